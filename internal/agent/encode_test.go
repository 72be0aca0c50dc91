package agent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// TestAppendEventAllFields fails when agentproto.Event gains a scalar field
// that appendEvent does not write. Pointer and slice payloads (file and
// context events) are encoded with encoding/json by their ops instead.
func TestAppendEventAllFields(t *testing.T) {
	t.Parallel()
	var ev agentproto.Event
	v := reflect.ValueOf(&ev).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v\"al\n" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer, reflect.Slice, reflect.Map:
			continue
		default:
			t.Fatalf("field %s has kind %s: teach appendEvent about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	line := appendEvent(nil, ev)
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got agentproto.Event
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
	}
	want, _ := json.Marshal(ev)
	var fromStd agentproto.Event
	_ = json.Unmarshal(want, &fromStd)
	if !reflect.DeepEqual(fromStd, got) {
		t.Errorf("differs from encoding/json: %s vs %s", line, want)
	}
	if empty := appendEvent(nil, agentproto.Event{Type: "exit"}); string(empty) != `{"t":"exit"}`+"\n" {
		t.Errorf("zero fields not omitted: %s", empty)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "\x00\x01\x1f\x7f", "tab\tnl\ncr\r", "üñí©ødé 𝄞", "bad \xff\xfe utf8 \xe2\x82", "<html>&amp;", "\u2028\u2029"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: invalid JSON: %v", s, enc, err)
		}
		std, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(std, &want)
		if got != want {
			t.Errorf("appendString(%q) decodes to %q, encoding/json's to %q", s, got, want)
		}
	})
}
