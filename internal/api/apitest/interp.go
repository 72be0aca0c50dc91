package apitest

import (
	"context"
	"iter"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// interp runs the toy language of Service.RunCode, one line at a time.
type interp struct {
	vars map[string]value
	env  map[string]string
	emit func(sandbox.CodeEvent)
	// main is the value of a trailing expression.
	main sandbox.Result
}

var (
	callRe    = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.]*)\((.*)\)$`)
	assignRe  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*=([^=].*)$`)
	nameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	environRe = regexp.MustCompile(`^os\.environ\[(.+)\]$`)
)

// value is an interpreter value: its str() and repr() forms, and its
// number when it is one.
type value struct {
	str, repr string
	num       *float64
	float     bool // a float rather than an int
}

func number(f float64, isFloat bool) value {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if isFloat && !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return value{str: s, repr: s, num: &f, float: isFloat}
}

func text(s string) value {
	return value{str: s, repr: "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"}
}

// raised is an exception of the interpreted code.
type raised struct{ name, value string }

func (r *raised) Error() string { return r.name + ": " + r.value }

func syntaxError() error { return &raised{"SyntaxError", "invalid syntax"} }

// exec runs one statement; last says it is the final line of the cell.
func (in *interp) exec(ctx context.Context, line string, last bool) error {
	switch {
	case line == "" || strings.HasPrefix(line, "#"),
		strings.HasPrefix(line, "import "), strings.HasPrefix(line, "from "):
		return nil
	case strings.HasPrefix(line, "raise "):
		return in.raise(strings.TrimSpace(strings.TrimPrefix(line, "raise ")))
	}
	if m := callRe.FindStringSubmatch(line); m != nil {
		switch m[1] {
		case "print", "console.log":
			return in.print(m[2])
		case "display":
			v, err := in.eval(m[2])
			if err != nil {
				return err
			}
			in.emit(sandbox.CodeEvent{Type: sandbox.CodeDisplay, Result: sandbox.Result{"text": v.repr}})
			return nil
		case "time.sleep", "sleep":
			return in.sleep(ctx, m[2])
		}
	}
	if m := assignRe.FindStringSubmatch(line); m != nil {
		v, err := in.eval(m[2])
		if err != nil {
			return err
		}
		in.vars[m[1]] = v
		return nil
	}
	v, err := in.eval(line)
	if err != nil {
		return err
	}
	if last && v.repr != "None" {
		in.main = sandbox.Result{"text": v.repr, "isMainResult": true}
	}
	return nil
}

// raise handles `raise Name` and `raise Name("message")`.
func (in *interp) raise(what string) error {
	if nameRe.MatchString(what) {
		return &raised{name: what}
	}
	m := callRe.FindStringSubmatch(what)
	if m == nil || !nameRe.MatchString(m[1]) {
		return syntaxError()
	}
	msg := ""
	if strings.TrimSpace(m[2]) != "" {
		v, err := in.eval(m[2])
		if err != nil {
			return err
		}
		msg = v.str
	}
	return &raised{name: m[1], value: msg}
}

// print writes its arguments, space-separated, as one line.
func (in *interp) print(args string) error {
	stream := sandbox.CodeStdout
	var parts []string
	for _, a := range splitArgs(args) {
		if k, v, ok := strings.Cut(a, "="); ok && nameRe.MatchString(strings.TrimSpace(k)) {
			if strings.TrimSpace(k) != "file" || strings.TrimSpace(v) != "sys.stderr" {
				return &raised{"TypeError", "unsupported print argument " + strings.TrimSpace(k)}
			}
			stream = sandbox.CodeStderr
			continue
		}
		v, err := in.eval(a)
		if err != nil {
			return err
		}
		parts = append(parts, v.str)
	}
	in.emit(sandbox.CodeEvent{Type: stream, Line: strings.Join(parts, " ")})
	return nil
}

func (in *interp) sleep(ctx context.Context, arg string) error {
	v, err := in.eval(arg)
	if err != nil {
		return err
	}
	if v.num == nil {
		return &raised{"TypeError", "sleep needs a number"}
	}
	t := time.NewTimer(time.Duration(*v.num * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// splitArgs splits on commas outside quotes and brackets. An empty
// argument list gives none.
func splitArgs(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	start := 0
	for i := range topLevel(s) {
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// topLevel yields the indexes of the bytes of s outside quotes and
// brackets.
func topLevel(s string) iter.Seq[int] {
	return func(yield func(int) bool) {
		depth := 0
		var quote byte
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case quote != 0:
				if c == '\\' {
					i++
				} else if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '(' || c == '[':
				depth++
			case c == ')' || c == ']':
				depth--
			case depth == 0:
				if !yield(i) {
					return
				}
			}
		}
	}
}

// topLevelOp finds the rightmost operator of the lowest precedence outside
// quotes and brackets: + or - first, then * or /. A sign (an operator at
// the start or after another operator) is not a binary operator.
func topLevelOp(s string) (int, byte) {
	for _, ops := range []string{"+-", "*/"} {
		found := -1
		for i := range topLevel(s) {
			if strings.IndexByte(ops, s[i]) < 0 {
				continue
			}
			if prev := strings.TrimSpace(s[:i]); prev != "" && !strings.ContainsAny(prev[len(prev)-1:], "+-*/") {
				found = i
			}
		}
		if found >= 0 {
			return found, s[found]
		}
	}
	return -1, 0
}

// eval evaluates an expression.
func (in *interp) eval(expr string) (value, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return value{}, syntaxError()
	}
	if i, op := topLevelOp(expr); i >= 0 {
		a, err := in.eval(expr[:i])
		if err != nil {
			return value{}, err
		}
		b, err := in.eval(expr[i+1:])
		if err != nil {
			return value{}, err
		}
		return arith(a, op, b)
	}
	switch {
	case strings.HasPrefix(expr, "(") && strings.HasSuffix(expr, ")"):
		return in.eval(expr[1 : len(expr)-1])
	case expr == "None":
		return value{str: "None", repr: "None"}, nil
	case expr == "True" || expr == "False":
		return value{str: expr, repr: expr}, nil
	case expr[0] == '"' || expr[0] == '\'':
		return stringLiteral(expr)
	case expr[0] == '-' || expr[0] >= '0' && expr[0] <= '9':
		f, err := strconv.ParseFloat(expr, 64)
		if err != nil {
			return value{}, syntaxError()
		}
		return number(f, strings.ContainsAny(expr, ".eE")), nil
	}
	if m := environRe.FindStringSubmatch(expr); m != nil {
		k, err := in.eval(m[1])
		if err != nil {
			return value{}, err
		}
		v, ok := in.env[k.str]
		if !ok {
			return value{}, &raised{"KeyError", k.repr}
		}
		return text(v), nil
	}
	if nameRe.MatchString(expr) {
		v, ok := in.vars[expr]
		if !ok {
			return value{}, &raised{"NameError", "name '" + expr + "' is not defined"}
		}
		return v, nil
	}
	return value{}, syntaxError()
}

func stringLiteral(expr string) (value, error) {
	q := expr[0]
	if len(expr) < 2 || expr[len(expr)-1] != q {
		return value{}, syntaxError()
	}
	body := expr[1 : len(expr)-1]
	if q == '\'' {
		body = strings.ReplaceAll(strings.ReplaceAll(body, `\'`, `'`), `"`, `\"`)
	}
	s, err := strconv.Unquote(`"` + body + `"`)
	if err != nil {
		return value{}, syntaxError()
	}
	return text(s), nil
}

func arith(a value, op byte, b value) (value, error) {
	if a.num == nil || b.num == nil {
		if op == '+' && a.num == nil && b.num == nil {
			return text(a.str + b.str), nil
		}
		return value{}, &raised{"TypeError", "unsupported operand type(s) for " + string(op)}
	}
	x, y := *a.num, *b.num
	isFloat := a.float || b.float
	switch op {
	case '+':
		return number(x+y, isFloat), nil
	case '-':
		return number(x-y, isFloat), nil
	case '*':
		return number(x*y, isFloat), nil
	default:
		if y == 0 {
			return value{}, &raised{"ZeroDivisionError", "division by zero"}
		}
		return number(x/y, true), nil
	}
}
