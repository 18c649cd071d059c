/** A role or mode this build of porthole does not provide yet. */
export class UnsupportedModeError extends Error {
  override readonly name = 'UnsupportedModeError';
}
