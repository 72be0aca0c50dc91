/** Preparing code before it is sent. */

/**
 * dedent removes the indentation that every non-blank line shares when the
 * first line of code is indented — what IPython does with an indented cell
 * (line numbers are kept). It lets a template
 * literal in an indented program hold Python:
 *
 *   sdk.runCode(id, `
 *     x = 1
 *     print(x)
 *   `)
 *
 * Code whose first line of code starts in column 0 is returned unchanged.
 */
export function dedent(code: string): string {
  const lines = code.split('\n');
  let first = 0;
  while (first < lines.length && lines[first]!.trim() === '') first++;
  if (first === lines.length) return code;
  if (!/^[ \t]/.test(lines[first]!)) return code;
  let prefix: string | undefined;
  for (let i = first; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const indent = /^[ \t]*/.exec(line)![0];
    if (prefix === undefined) {
      prefix = indent;
      continue;
    }
    let n = 0;
    while (n < prefix.length && n < indent.length && prefix[n] === indent[n]) n++;
    prefix = prefix.slice(0, n);
    if (prefix === '') break;
  }
  if (!prefix) return code;
  const cut = prefix.length;
  return lines
    .map((line) => (line.trim() === '' ? line.replace(/^[ \t]+/, '') : line.slice(cut)))
    .join('\n');
}
