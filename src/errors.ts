/**
 * The error hierarchy of osp-lab. A user mistake gets one of these, with a message that names the
 * field or file, the value found and what was expected, so that it can be fixed without a stack trace.
 */

/** Base class: every error osp-lab raises on purpose. */
export class OspError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A configuration value is missing, unknown or out of range. */
export class ConfigError extends OspError {
  /**
   * @param field dotted path of the offending field, e.g. `model.norm`
   * @param message what was found and what is expected
   */
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A requested backend cannot start here; the message says why and how to fix it. */
export class BackendUnavailableError extends OspError {
  constructor(
    readonly backend: string,
    message: string,
  ) {
    super(`backend '${backend}' is unavailable: ${message}`);
  }
}

/** Tensor shapes or dtypes do not match what an op or module expects. */
export class ShapeError extends OspError {}

/** Throws a ConfigError listing the valid choices when `value` is not one of them. */
export function checkChoice<T extends string>(field: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new ConfigError(field, `unknown value ${JSON.stringify(value)}; valid choices: ${choices.map((c) => `'${c}'`).join(', ')}`);
  }
  return value as T;
}

/** A data file is missing, empty, malformed, or too short for the requested sequence length. */
export class DataError extends OspError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** A file in one of osp-lab's formats (safetensors, checkpoint, event file, GGUF) is malformed or fails its checksum. */
export class FormatError extends OspError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/**
 * A model cannot be turned into a plain Llama exactly (export to Hugging Face or GGUF, the 4-bit
 * evaluation): the message names the module and what a Llama lacks to represent it.
 */
export class FoldError extends OspError {}
