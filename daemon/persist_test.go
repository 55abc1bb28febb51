package daemon

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	good, _ := json.Marshal(sessionRecord{Owner: 1000, Name: "work", Profile: "client\n"})
	if r, err := parseRecord(good, "1000-work.json"); err != nil || r.Owner != 1000 || r.Name != "work" {
		t.Fatalf("good record: %+v, %v", r, err)
	}
	for _, c := range []struct{ data, base string }{
		{string(good), "0-work.json"}, // the file name must match: no owner smuggled in
		{`{"owner":1000,"name":"../x","profile":""}`, "1000-../x.json"},
		{`{"owner":1000,"name":"work"`, "1000-work.json"},
		{`{"owner":1000,"name":"work","profile":"` + strings.Repeat("x", maxRecordSize) + `"}`, "1000-work.json"},
	} {
		if _, err := parseRecord([]byte(c.data), c.base); err == nil {
			t.Errorf("accepted %.60q as %s", c.data, c.base)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	good, _ := json.Marshal(sessionRecord{Owner: 1000, Name: "work", Profile: "client\n", Override: true})
	f.Add(good, "1000-work.json")
	f.Add([]byte(`{"owner":-1}`), "x.json")
	f.Add([]byte(`null`), "0-.json")
	f.Fuzz(func(t *testing.T, data []byte, base string) {
		r, err := parseRecord(data, base)
		if err == nil && base != recordFile(r.Owner, r.Name) {
			t.Fatalf("accepted a record for %s from %s", recordFile(r.Owner, r.Name), base)
		}
	})
}
