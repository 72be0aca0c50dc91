package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// decodeObject decodes one JSON object into the struct v points to. what
// names the input in messages ("request body", "payload").
//
// It is strict where encoding/json is lenient: keys must match a field's
// json name exactly (no case folding), unknown keys are refused, and a
// value of the wrong type is refused with its path ("initialEnvVars.HOME",
// "args[2]", "jobs[0].timeout"). Nested objects that map to structs follow
// the same rules. A null member of such an object (top-level or nested)
// counts as absent; null as an element of an array or a value of a map
// (envs) is refused.
func decodeObject(what string, data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return errors.New("api: decodeObject needs a pointer to a struct")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return invalidf("%s: empty, expected a JSON object", what)
	}
	if !plainObject(data) {
		if err := checkObject(what, data); err != nil {
			return err
		}
	}
	fields, err := objectMembers(data)
	if err != nil {
		return invalidf("%s: malformed JSON: %s", what, syntaxMessage(err))
	}
	return decodeFields("", fields, rv.Elem())
}

// plainObject reports, without allocating, whether data is one well-formed
// JSON object whose numbers all fit a float64: what checkObject accepts.
// It is the fast path of the usual, valid body.
func plainObject(data []byte) bool {
	if data[0] != '{' || !json.Valid(data) {
		return false
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			if c == '\\' {
				i++ // the escaped byte cannot end the string
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || '0' <= c && c <= '9':
			j, exp := i+1, false
			for ; j < len(data) && strings.IndexByte("0123456789+-.eE", data[j]) >= 0; j++ {
				exp = exp || data[j] == 'e' || data[j] == 'E'
			}
			// Without an exponent, fewer than 300 digits always fit.
			if exp || j-i >= 300 {
				if _, err := strconv.ParseFloat(string(data[i:j]), 64); err != nil {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

// checkObject refuses data that is not one JSON object, with a message
// that names the problem.
func checkObject(what string, data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var top any
	if err := dec.Decode(&top); err != nil {
		return invalidf("%s: malformed JSON: %s", what, syntaxMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("%s: unexpected data after the JSON object", what)
	}
	if _, ok := top.(map[string]any); !ok {
		return invalidf("%s: expected a JSON object, got %s", what, jsonKind(top))
	}
	return nil
}

// decodeFields decodes the members of a JSON object into the struct st.
// prefix is the path of the object ("" at the top, "jobs[0]." inside).
func decodeFields(prefix string, fields []member, st reflect.Value) error {
	for _, m := range fields {
		if fieldIndex(st.Type(), m.key) < 0 {
			return invalidf("unknown field %q", prefix+m.key)
		}
	}
	for _, m := range fields {
		if isNull(m.raw) {
			continue
		}
		if err := decodeValue(prefix+m.key, m.raw, st.Field(fieldIndex(st.Type(), m.key))); err != nil {
			return err
		}
	}
	return nil
}

// fieldIndex returns the index of the field of struct type t whose json
// name is name (the last one, should two share it), or -1. Bodies have a
// handful of fields: a scan beats building a map per object.
func fieldIndex(t reflect.Type, name string) int {
	for i := t.NumField() - 1; i >= 0; i-- {
		if jsonName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

// decodeValue decodes raw into dst, naming path in errors. Maps with
// string keys and slices are walked element by element so the path names
// the exact element.
func decodeValue(path string, raw json.RawMessage, dst reflect.Value) error {
	t := dst.Type()
	switch {
	case t.Kind() == reflect.Pointer:
		elem := reflect.New(t.Elem())
		if err := decodeValue(path, raw, elem.Elem()); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		var elems map[string]json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return typeError(path, t, raw)
		}
		m := reflect.MakeMapWithSize(t, len(elems))
		for _, k := range sortedKeys(elems) {
			v := reflect.New(t.Elem()).Elem()
			if err := decodeElem(path+"."+k, elems[k], v); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), v)
		}
		dst.Set(m)
		return nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return typeError(path, t, raw)
		}
		s := reflect.MakeSlice(t, len(elems), len(elems))
		for i, e := range elems {
			if err := decodeElem(path+"["+itoa(i)+"]", e, s.Index(i)); err != nil {
				return err
			}
		}
		dst.Set(s)
		return nil
	case t.Kind() == reflect.Struct:
		// A nested object follows the top-level rules: exact names, no
		// unknown keys, null members absent.
		if len(raw) == 0 || raw[0] != '{' {
			return typeError(path, t, raw)
		}
		fields, err := objectMembers(raw)
		if err != nil {
			return typeError(path, t, raw)
		}
		return decodeFields(path+".", fields, dst)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		// Integers may be written with a fraction or exponent (1e3, 5.0)
		// as long as the value is whole and fits.
		var f float64
		if err := json.Unmarshal(raw, dst.Addr().Interface()); err == nil {
			return nil
		} else if json.Unmarshal(raw, &f) != nil || f != math.Trunc(f) || f >= math.MaxInt64 || f < math.MinInt64 {
			return typeError(path, t, raw)
		}
		if dst.OverflowInt(int64(f)) {
			return typeError(path, t, raw)
		}
		dst.SetInt(int64(f))
		return nil
	case t == stringType && isPlainString(raw):
		dst.SetString(string(raw[1 : len(raw)-1]))
		return nil
	default:
		if err := json.Unmarshal(raw, dst.Addr().Interface()); err != nil {
			return typeError(path, t, raw)
		}
		return nil
	}
}

// decodeElem is decodeValue for an element of a map or slice, where null
// is refused rather than read as absent.
func decodeElem(path string, raw json.RawMessage, dst reflect.Value) error {
	if isNull(raw) {
		return typeError(path, dst.Type(), raw)
	}
	return decodeValue(path, raw, dst)
}

// typeError names the field, the expected type and what was sent.
func typeError(path string, want reflect.Type, raw json.RawMessage) error {
	var v any
	got := "malformed JSON"
	if json.Unmarshal(raw, &v) == nil {
		got = jsonKind(v)
		if f, ok := v.(float64); ok && want.Kind() >= reflect.Int && want.Kind() <= reflect.Uint64 {
			got = "number " + string(bytes.TrimSpace(raw))
			if f == math.Trunc(f) {
				got += " (out of range)"
			}
		}
	}
	return invalidf("field %q: expected %s, got %s", path, typeName(want), got)
}

// typeName describes a Go type in JSON terms.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map:
		return "an object of " + plural(t.Elem())
	case reflect.Slice, reflect.Array:
		return "an array of " + plural(t.Elem())
	default:
		return "an object"
	}
}

func plural(t reflect.Type) string {
	n := typeName(t)
	n = strings.TrimPrefix(strings.TrimPrefix(n, "an "), "a ")
	return n + "s"
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// jsonName is the json key of a struct field, or "" when it has none.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// syntaxMessage describes a JSON syntax error without Go type names.
func syntaxMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " (at byte " + itoa(int(se.Offset)) + ")"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return "cannot parse"
}

func itoa(i int) string { return strconv.Itoa(i) }
