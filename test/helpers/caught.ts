/** The error a call throws, checked to be of `kind` (the test fails if it throws nothing or something else). */
import { expect } from 'vitest';

export function caught<E extends Error>(fn: () => unknown, kind: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(kind);
    return e as E;
  }
  throw new Error(`expected a ${kind.name}, but nothing was thrown`);
}
