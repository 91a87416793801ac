// The error every Shoal HTTP endpoint answers with and every Shoal client throws: a status, a code a
// client can branch on, and a message. Servers map their layers' typed errors to it
// (manager/api/errors.ts errorStatus); clients (transport/https.ts) rebuild it from a peer's answer.

/** An error that already knows its HTTP status (thrown by the API layer itself). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) => new ApiError(400, 'EINVAL', message, details);
export const forbidden = (message: string) => new ApiError(403, 'EFORBIDDEN', message);
export const unauthorized = (message: string) => new ApiError(401, 'EUNAUTHENTICATED', message);
export const notFound = (message: string) => new ApiError(404, 'ENOTFOUND', message);
export const conflict = (message: string) => new ApiError(409, 'ECONFLICT', message);
export const tooLarge = (message: string, details?: Record<string, unknown>) => new ApiError(413, 'ETOOLARGE', message, details);

/** The response an error becomes: status, and the body's `error` member. */
export interface ErrorResponse {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}
