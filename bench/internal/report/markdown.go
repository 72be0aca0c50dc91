package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// The generated section of docs/benchmarks.md sits between these lines;
// everything outside them is hand-written and kept.
const (
	BeginMarker = "<!-- bench/all: generated section, do not edit by hand -->"
	EndMarker   = "<!-- bench/all: end of generated section -->"
)

// WriteMarkdown renders the results as the Markdown section of
// docs/benchmarks.md (without the markers), linking the chart at png
// when png is not empty.
func (res *Results) WriteMarkdown(w io.Writer, png string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Latest harness run: `%s`, %s UTC, %s, took %s%s%s.\n\n",
		res.Command, res.Started.UTC().Format("2006-01-02 15:04"), res.Machine, res.Duration, quickNote(res.Quick), runsNote(res.Runs))
	if png != "" {
		fmt.Fprintf(&b, "![benchmark chart](%s)\n\n", png)
	}
	b.WriteString("| measure | result | n | target | | note | alone |\n|---|---|---|---|---|---|---|\n")
	section := ""
	for _, r := range res.Rows {
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(&b, "| **%s** | | | | | | |\n", cell(section))
		}
		n := ""
		if r.N > 0 {
			n = fmt.Sprint(r.N)
		}
		verdict := r.Verdict()
		if verdict != "" {
			verdict = "**" + verdict + "**"
		}
		alone := ""
		if r.Alone != "" {
			alone = "`" + strings.ReplaceAll(r.Alone, "|", `\|`) + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			cell(r.Name), cell(r.Result()), n, cell(r.TargetText()), verdict, cell(r.Note), alone)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(&b, "\nSkipped: %s.\n", s)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func quickNote(q bool) string {
	if q {
		return " (-quick: few samples, figures are rough)"
	}
	return ""
}

func runsNote(n int) string {
	if n > 1 {
		return fmt.Sprintf("; each figure is the median of %d runs, the range is in its note", n)
	}
	return ""
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// UpdateDoc replaces the generated section of the Markdown file at path
// with section, keeping everything outside the markers. A file without
// the markers gets the section appended under a heading.
func UpdateDoc(path string, section []byte) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := spliceSection(old, section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// spliceSection puts section between the markers of doc.
func spliceSection(doc, section []byte) ([]byte, error) {
	block := []byte(BeginMarker + "\n\n" + string(bytes.TrimSpace(section)) + "\n\n" + EndMarker)
	i := bytes.Index(doc, []byte(BeginMarker))
	j := bytes.Index(doc, []byte(EndMarker))
	switch {
	case i < 0 && j < 0:
		out := append(bytes.TrimRight(doc, "\n"), "\n\n## Latest harness run\n\n"...)
		return append(append(out, block...), '\n'), nil
	case i < 0 || j < i:
		return nil, fmt.Errorf("the generated section's markers are broken (one missing or out of order)")
	}
	var out []byte
	out = append(out, doc[:i]...)
	out = append(out, block...)
	return append(out, doc[j+len(EndMarker):]...), nil
}
