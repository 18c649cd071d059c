/** A bad URL, parameter value or environment variable. `param` names what was wrong, for API error bodies. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}
