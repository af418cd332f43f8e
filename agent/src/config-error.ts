// A configuration the agent refuses to start with; the message says what to change.
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
