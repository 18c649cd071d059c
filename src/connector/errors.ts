/** A rule that already exists (create) or a duplicate within one request. */
export class RuleConflictError extends Error {
  override readonly name = 'RuleConflictError';
}
/** A rule or port that is not there (update, delete, release). */
export class RuleNotFoundError extends Error {
  override readonly name = 'RuleNotFoundError';
}
/** A port this tunnel does not hold. */
export class PortNotOwnedError extends Error {
  override readonly name = 'PortNotOwnedError';
}
/** The operation needs a live session with the hub. */
export class NotConnectedError extends Error {
  override readonly name = 'NotConnectedError';
}
/** A port mapping's local listener could not be bound. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}
