// What an error means on the wire: one mapping from the typed errors of every layer (store, spec
// validation, scheduler constraints, IPAM, Raft) to an HTTP status and a code a client can branch on.
// Never by `.name`: a subclass such as NameInUseError then gets its own status without every caller
// learning its name, and a renamed class cannot silently become a 500.
//
//   400 the request is invalid (ValidationError, SpecError, TemplateError, ConstraintError, IpamError,
//       LimitExceededError: past a cluster limit, naming the setting)
//   404 not found (NotFoundError)
//   409 name in use, or the object changed since it was read (NameInUseError, ConflictError)
//   413 too large (TxTooLargeError; request bodies: readJson in http.ts)
//   503 no leader / the outcome of a write is not known (Raft errors), retry
//   500 anything else: a bug, reported with its message and nothing more
//
// The API's and the store's errors are matched by class (instanceof): their modules are small and hold
// nothing else. The errors of the service spec, constraints, IPAM and Raft are matched by the brand each
// class declares (`readonly wire = 'invalid'`, see Wire below) and imported here as types only: this file
// is imported through http.ts by every daemon, and instanceof would load those modules (Raft's node and
// core, the spec's validation) into each worker, which never runs them (0.7 MB of heap; build.md
// "Memory"). A brand is inherited like a class: a subclass answers as its parent, as with instanceof.
import type { NotLeaderError, ProposalRejectedError } from '../raft/core.ts';
import type { ProposalDroppedError, ProposalOutcomeUnknownError, RaftStoppedError, ReadFailedError } from '../raft/node.ts';
import type { IpamError } from '../allocator/ipam.ts';
import type { ConstraintError } from '../scheduler/constraints.ts';
import type { SpecError } from '../service/spec.ts';
import { TemplateError } from '../../api/templates.ts';
import { ApiError, type ErrorResponse } from '../../api/errors.ts';
import { BatchError, ConflictError, LimitExceededError, NameInUseError, NotFoundError, TxTooLargeError, ValidationError } from '../store/errors.ts';

export { ApiError, badRequest, conflict, forbidden, notFound, tooLarge, unauthorized, type ErrorResponse } from '../../api/errors.ts';

function withField(field: string | undefined): Record<string, unknown> | undefined {
  return field !== undefined ? { field } : undefined;
}

/** Maps any thrown value to its response. Order matters only for subclasses (NameInUseError before ValidationError). */
export function errorStatus(err: unknown): ErrorResponse {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
  // A batch reports the error that stopped it.
  if (err instanceof BatchError && err.cause !== undefined) return errorStatus(err.cause);
  if (err instanceof NameInUseError) {
    return { status: 409, code: err.code, message: err.message, details: { kind: err.kind, name: err.objectName } };
  }
  if (err instanceof ConflictError) {
    const message =
      err.expected !== null && err.actual !== null
        ? `${err.kind} ${err.id} changed since it was read (update out of sequence: sent version ${err.expected}, current version ${err.actual}); read it again and retry`
        : err.message;
    return { status: 409, code: err.code, message, details: { kind: err.kind, id: err.id, expected: err.expected, actual: err.actual } };
  }
  if (err instanceof LimitExceededError) {
    return {
      status: 400,
      code: err.code,
      message: err.message,
      details: { setting: err.setting, limit: err.limit, actual: err.actual, ...withField(err.field) },
    };
  }
  if (err instanceof ValidationError) return { status: 400, code: err.code, message: err.message };
  if (err instanceof NotFoundError) return { status: 404, code: err.code, message: err.message };
  if (err instanceof TxTooLargeError) {
    return { status: 413, code: err.code, message: err.message, details: { size: err.size, limit: err.limit } };
  }
  if (err instanceof TemplateError) return { status: 400, code: err.code, message: err.message };
  if (isBranded(err)) return brandedStatus(err);
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, code: 'EINTERNAL', message };
}

/**
 * What a branded error's `wire` says:
 *   invalid          400; `details.field` when the error names the input field at fault
 *   unavailable      503, no leader or no confirmed read; `details.leader` when one is known
 *   retry            503, the write was definitely not applied: retry
 *   outcome-unknown  503, the write may or may not have been applied: check, then retry
 */
export type Wire = 'invalid' | 'unavailable' | 'retry' | 'outcome-unknown';
const WIRES: ReadonlySet<unknown> = new Set<Wire>(['invalid', 'unavailable', 'retry', 'outcome-unknown']);

/** Every class that declares a `wire` brand; brandedStatus's switch fails to compile if one names no Wire. */
type Branded =
  | SpecError
  | ConstraintError
  | IpamError
  | NotLeaderError
  | ReadFailedError
  | ProposalRejectedError
  | ProposalDroppedError
  | RaftStoppedError
  | ProposalOutcomeUnknownError;

function isBranded(err: unknown): err is Branded {
  return err instanceof Error && WIRES.has((err as { wire?: unknown }).wire);
}

function brandedStatus(err: Branded): ErrorResponse {
  switch (err.wire) {
    case 'invalid': {
      const field = 'field' in err ? err.field : undefined;
      return { status: 400, code: err.code, message: err.message, ...(field !== undefined ? { details: { field } } : {}) };
    }
    case 'unavailable':
      return { status: 503, code: err.code, message: err.message, ...(err.leader ? { details: { leader: err.leader } } : {}) };
    case 'retry':
      return { status: 503, code: err.code, message: `${err.message}; retry` };
    case 'outcome-unknown':
      return { status: 503, code: err.code, message: `${err.message}: check whether the change was applied, then retry` };
    default: {
      const unmapped: never = err;
      throw new Error(`internal: no status for ${String(unmapped)}`);
    }
  }
}
