// The AstraError a promise fails with; the test fails if it resolves or fails with anything else.
import { expect } from "vitest";
import { AstraError } from "../lib/errors.ts";

export async function rejection(p: Promise<unknown>): Promise<AstraError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return e as AstraError;
  }
  throw new Error("expected the call to fail");
}
