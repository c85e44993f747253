package cekat

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	jakarta, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2025-03-27T15:00:00Z", utc("2025-03-27T15:00:00Z")},
		{"2025-03-27T15:00:00+00:00", utc("2025-03-27T15:00:00Z")},
		{"2025-03-27T22:00:00+07:00", utc("2025-03-27T15:00:00Z")},
		{"2025-03-27T15:00:00.5Z", utc("2025-03-27T15:00:00.5Z")},
		{"2025-03-27T15:00:00.123456789Z", utc("2025-03-27T15:00:00.123456789Z")},
		{"2025-03-27T15:00:00.123+00:00", utc("2025-03-27T15:00:00.123Z")},
		{"2025-03-27 22:00:00", utc("2025-03-27T15:00:00Z")}, // Jakarta local
		{"2025-03-27T22:00:00", utc("2025-03-27T15:00:00Z")},
		{"2025-03-27 22:00:00.250", utc("2025-03-27T15:00:00.25Z")},
		{"2025-03-27 15:00:00.123456+00", utc("2025-03-27T15:00:00.123456Z")}, // Postgres
		{"2025-03-27 22:00:00.123456+07", utc("2025-03-27T15:00:00.123456Z")},
		{"2025-03-27 15:00:00+00:00", utc("2025-03-27T15:00:00Z")},
		{"1743087600", utc("2025-03-27T15:00:00Z")},       // Unix seconds
		{"1743087600.25", utc("2025-03-27T15:00:00.25Z")}, // with a fraction
		{"1743087600000", utc("2025-03-27T15:00:00Z")},    // Unix milliseconds
		{"  2025-03-27T15:00:00Z ", utc("2025-03-27T15:00:00Z")},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, jakarta)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestZonedLayoutGuess: every zoned form is read by the layout guessed
// first (a wrong guess would only cost failed attempts, so nothing else
// would show it).
func TestZonedLayoutGuess(t *testing.T) {
	for _, in := range []string{
		"2025-03-27T15:00:00Z", "2025-03-27T22:00:00+07:00", "2025-03-27T15:00:00.123-03:00",
		"2025-03-27 15:00:00Z", "2025-03-27 15:00:00+00:00", "2025-03-27 15:00:00.5+0700",
		"2025-03-27T15:00:00+0700", "2025-03-27 15:00:00.123456+00", "2025-03-27T15:00:00-07",
		"2025-03-27 15:00:00 -0700", "2025-03-27 15:00:00 +07:00",
	} {
		layout := zonedLayout(in)
		if layout == "" {
			t.Errorf("zonedLayout(%q): no guess", in)
			continue
		}
		if _, err := time.Parse(layout, in); err != nil {
			t.Errorf("zonedLayout(%q) = %q, which does not read it: %v", in, layout, err)
		}
	}
}

func TestParseTimeRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "yesterday", "2025-13-01T00:00:00Z", "2025-03-27", "27/03/2025 15:00",
		"1969-12-31T23:59:59Z", // before ClickHouse DateTime
		"2200-01-01T00:00:00Z", // after it
		"-5", ".", "-", "1e5", "2025-03-27T25:00:00Z",
	} {
		if got, err := ParseTime(in, time.UTC); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseTimeJSON(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want int64
		ok   bool
	}{
		{`1743087600`, 1743087600, true},
		{`1743087600.0`, 1743087600, true},
		{`"2025-03-27T15:00:00Z"`, 1743087600, true},
		{`"1743087600"`, 1743087600, true},
		{`true`, 0, false},
		{`{}`, 0, false},
		{`-1`, 0, false},
		{`1e400`, 0, false},
	} {
		got, err := parseTimeJSON(json.RawMessage(tt.raw), time.UTC)
		if (err == nil) != tt.ok {
			t.Errorf("parseTimeJSON(%s): err = %v, want ok=%v", tt.raw, err, tt.ok)
			continue
		}
		if tt.ok && got.Unix() != tt.want {
			t.Errorf("parseTimeJSON(%s) = %d, want %d", tt.raw, got.Unix(), tt.want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2025-03-27T15:00:00Z", "2025-03-27T15:00:00+00:00", "2025-03-27T15:00:00.123456Z",
		"2025-03-27 22:00:00", "2025-03-27 15:00:00.123456+00", "1743087600", "1743087600000",
		"", "x", "-1", "2106-02-07T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, time.UTC)
		if err != nil {
			return
		}
		if got.Before(minTime) || !got.Before(maxTime) {
			t.Fatalf("ParseTime(%q) = %v outside the archive's range", s, got)
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) not in UTC", s)
		}
	})
}
