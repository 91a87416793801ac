// The store's typed errors, in their own file so that pure modules beside the store (limits.ts) and the
// API's status mapping (manager/api/errors.ts) can import them without importing the store itself.
// Callers match them with instanceof; `code` is what goes on the wire.
import type { Kind } from '../../api/objects.ts';

export class StoreError extends Error {
  readonly code: string;
  constructor(message: string, code = 'ESTORE', options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/**
 * A precondition on an object's version failed. `expected` / `actual` are versions, null meaning "absent":
 * expected null = the transaction creates the object; actual null = it does not exist (any more).
 */
export class ConflictError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly id: string,
    readonly expected: number | null,
    readonly actual: number | null,
  ) {
    super(conflictMessage(kind, id, expected, actual), 'ECONFLICT');
    this.name = 'ConflictError';
  }
}

function conflictMessage(kind: Kind, id: string, expected: number | null, actual: number | null): string {
  if (expected === null) return `conflict: ${kind} ${id} already exists (version ${String(actual)})`;
  if (actual === null) return `conflict: ${kind} ${id} was written at version ${expected} but no longer exists`;
  return `conflict: ${kind} ${id} was written at version ${expected} but the store has version ${actual}`;
}

/** The object (or the entry) is malformed, or violates a uniqueness rule. */
export class ValidationError extends StoreError {
  constructor(message: string, code = 'EINVALID') {
    super(message, code);
    this.name = 'ValidationError';
  }
}

/** Services and networks have unique names per kind (case-insensitive). */
export class NameInUseError extends ValidationError {
  constructor(
    readonly kind: Kind,
    readonly objectName: string,
  ) {
    super(`${kind} name ${objectName} is already in use`, 'ENAMEINUSE');
    this.name = 'NameInUseError';
  }
}

/** Raised inside a transaction for an object that does not exist. */
export class NotFoundError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly id: string,
  ) {
    super(`${kind} ${id} not found`, 'ENOTFOUND');
    this.name = 'NotFoundError';
  }
}

/** The encoded transaction exceeds the limit; it was not proposed. Split it (see Store.batch). */
export class TxTooLargeError extends StoreError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`transaction is ${size} bytes encoded, above the ${limit}-byte limit; split it (Store.batch)`, 'ETXTOOLARGE');
    this.name = 'TxTooLargeError';
  }
}

/**
 * A write (or a request) would go past one of the cluster's limits (ClusterSpec.limits, manager/store/
 * limits.ts). `setting` names it as `shoal cluster inspect` shows it (`limits.maxReplicas`); `field`, when
 * known, is the offending field of the object or request (`mode.replicated.replicas`).
 */
export class LimitExceededError extends StoreError {
  constructor(
    readonly setting: string,
    readonly limit: number,
    readonly actual: number,
    message: string,
    readonly field?: string,
  ) {
    super(message, 'ELIMIT');
    this.name = 'LimitExceededError';
  }
}

/** A watch subscriber fell more than `maxQueue` events behind; it was closed and must resync. */
export class WatchOverflowError extends StoreError {
  constructor(readonly maxQueue: number) {
    super(`watch subscriber fell more than ${maxQueue} events behind and was closed; resync from the store`, 'EWATCHOVERFLOW');
    this.name = 'WatchOverflowError';
  }
}

/** The store's whole state was replaced from a snapshot (restore); every watch was closed and must resync. */
export class StoreResetError extends StoreError {
  constructor(readonly index: number) {
    super(`store state was replaced by a snapshot at index ${index}; resync from the store`, 'ESTORERESET');
    this.name = 'StoreResetError';
  }
}

/** A batch stopped on an error. The first `itemsCommitted` items were committed (in `indexes`). */
export class BatchError extends StoreError {
  constructor(
    readonly itemsCommitted: number,
    readonly indexes: number[],
    cause: unknown,
  ) {
    super(`batch stopped after ${itemsCommitted} committed items: ${errText(cause)}`, 'EBATCH', { cause });
    this.name = 'BatchError';
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
