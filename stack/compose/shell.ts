// `command: echo "hello world"` and `entrypoint: …` written as one string are split into words the way
// Docker's compose loader does (a shlex-style split, no expansion): whitespace separates words; single
// quotes keep everything literally; double quotes keep everything except `\"`, `\\`, `\$` and `\``; a
// backslash outside quotes escapes the next character; `#` at the start of a word begins a comment.

export class ShellSplitError extends Error {
  readonly code = 'ESHELLSPLIT';
  constructor(message: string) {
    super(message);
    this.name = 'ShellSplitError';
  }
}

export function shellSplit(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === '#' && !inWord) {
      const nl = s.indexOf('\n', i);
      if (nl < 0) break;
      i = nl;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new ShellSplitError(`unterminated single quote in ${JSON.stringify(s)}`);
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\' && j + 1 < s.length && '\\"$`'.includes(s[j + 1]!)) j++;
        cur += s[j];
      }
      if (j >= s.length) throw new ShellSplitError(`unterminated double quote in ${JSON.stringify(s)}`);
      i = j;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= s.length) throw new ShellSplitError(`a trailing backslash in ${JSON.stringify(s)} escapes nothing`);
      cur += s[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}
