/** A configuration that cannot be used: the message names every variable that is wrong (src/config.ts). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
