// The errors of the compose loader. A compose file is user input written by hand, so every problem names
// where it is: the file as the user gave it, the line, and the dotted key path
// (`docker-stack.yml:14: services.web.deploy.replicas: must be an integer, got "three"`). The loader
// collects the problems of a whole load (bounded) and throws them together, so a user fixes a file in
// one round instead of one error per deploy attempt.

/** Where a value was written: the file as given on the command line and its 1-based line. */
export interface Pos {
  file: string;
  line: number;
}

export interface Problem {
  pos: Pos;
  /** Dotted key path, e.g. `services.web.deploy.replicas` (empty for whole-file problems). */
  key: string;
  message: string;
}

/** At most this many problems are kept: a badly broken file should not produce an unbounded report. */
export const MAX_PROBLEMS = 50;

export function formatProblem(p: Problem): string {
  return `${p.pos.file}:${p.pos.line}: ${p.key ? `${p.key}: ` : ''}${p.message}`;
}

/** The compose file(s) cannot be deployed. `problems` lists each one; the message holds them all, one a line. */
export class ComposeError extends Error {
  readonly code = 'ECOMPOSE';
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ComposeError';
    this.problems = problems;
  }
}

/** A compose (or .env / env_file) file could not be read. */
export class ComposeFileError extends Error {
  readonly code = 'ECOMPOSEFILE';
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.name = 'ComposeFileError';
    this.path = path;
  }
}

/** Collects problems up to MAX_PROBLEMS; `throwIfAny` ends a phase that found some. */
export class Problems {
  readonly list: Problem[] = [];
  add(pos: Pos, key: string, message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ pos, key, message });
  }
  get any(): boolean {
    return this.list.length > 0;
  }
  throwIfAny(): void {
    if (this.list.length) throw new ComposeError(this.list);
  }
}
