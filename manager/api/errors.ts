// What an error means on the wire: one mapping from the typed errors of every layer (store, spec
// validation, scheduler constraints, IPAM, Raft) to an HTTP status and a code a client can branch on.
// Every match is by class (instanceof), never by `.name`: a subclass such as NameInUseError then gets its
// own status without every caller learning its name, and a renamed class cannot silently become a 500.
//
//   400 the request is invalid (ValidationError, SpecError, TemplateError, ConstraintError, IpamError,
//       LimitExceededError: past a cluster limit, naming the setting)
//   404 not found (NotFoundError)
//   409 name in use, or the object changed since it was read (NameInUseError, ConflictError)
//   413 too large (TxTooLargeError; request bodies: readJson in http.ts)
//   503 no leader / the outcome of a write is not known (Raft errors), retry
//   500 anything else: a bug, reported with its message and nothing more
import { NotLeaderError, ProposalRejectedError } from '../raft/core.ts';
import { ProposalDroppedError, ProposalOutcomeUnknownError, RaftStoppedError, ReadFailedError } from '../raft/node.ts';
import { IpamError } from '../allocator/ipam.ts';
import { ConstraintError } from '../scheduler/constraints.ts';
import { SpecError } from '../service/spec.ts';
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
  if (err instanceof SpecError) return { status: 400, code: err.code, message: err.message, details: { field: err.field } };
  if (err instanceof IpamError)
    return { status: 400, code: err.code, message: err.message, ...(err.field !== undefined ? { details: { field: err.field } } : {}) };
  if (err instanceof TemplateError || err instanceof ConstraintError) return { status: 400, code: err.code, message: err.message };
  if (err instanceof NotLeaderError || err instanceof ReadFailedError) {
    return { status: 503, code: err.code, message: err.message, ...(err.leader ? { details: { leader: err.leader } } : {}) };
  }
  if (err instanceof ProposalOutcomeUnknownError)
    return { status: 503, code: err.code, message: `${err.message}: check whether the change was applied, then retry` };
  if (err instanceof ProposalDroppedError || err instanceof RaftStoppedError || err instanceof ProposalRejectedError) {
    return { status: 503, code: err.code, message: `${err.message}; retry` };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, code: 'EINTERNAL', message };
}
