package cekat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The archive stores time stamps in ClickHouse DateTime, whose range is
// 1970-01-01 to 2106-02-07. A time stamp outside it cannot be archived
// faithfully, so it is rejected rather than clamped.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC)
)

// unixMillisThreshold separates Unix seconds from Unix milliseconds: 1e11
// seconds is the year 5138, far outside the archive's range, while 1e11
// milliseconds is 1973.
const unixMillisThreshold = 1e11

// zoned layouts carry their own offset; Go's parser accepts a fractional
// second of any length after the seconds even when the layout has none.
var zonedLayouts = []string{
	time.RFC3339Nano,            // 2025-03-27T15:00:00Z, +00:00, any fraction
	"2006-01-02 15:04:05Z07:00", // space instead of T
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05-07", // Postgres: 2025-03-27 15:00:00.123456+00
	"2006-01-02T15:04:05-07",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -07:00",
	time.RFC1123Z,
	time.RFC1123,
}

// localLayouts have no zone; the vendor documents such values as local time
// of the account (Asia/Jakarta by default).
var localLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
}

// ParseTime parses every time stamp format seen from the Cekat API: RFC3339
// with Z or an offset and any fraction, Postgres style with a short offset,
// zone-less "YYYY-MM-DD HH:MM:SS" read in loc, and Unix seconds (or
// milliseconds) written as a string. The result is in UTC.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time stamp")
	}
	if loc == nil {
		loc = time.UTC
	}
	if isNumeric(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("time stamp %q: %w", s, err)
		}
		return unixTime(f)
	}
	// No string matches layouts of both kinds, so the order of the kinds does
	// not matter; the likely one first spares failed parses, each of which
	// allocates its error (the flat shape's zone-less times failed all ten
	// zoned layouts first: half the cost of decoding a detail answer).
	zonedFirst := hasZone(s)
	if zonedFirst {
		if layout := zonedLayout(s); layout != "" {
			if t, err := time.Parse(layout, s); err == nil {
				return checkRange(t, s)
			}
		}
	}
	for range 2 {
		if zonedFirst {
			for _, layout := range zonedLayouts {
				if t, err := time.Parse(layout, s); err == nil {
					return checkRange(t, s)
				}
			}
		} else {
			for _, layout := range localLayouts {
				if t, err := time.ParseInLocation(layout, s, loc); err == nil {
					return checkRange(t, s)
				}
			}
		}
		zonedFirst = !zonedFirst
	}
	return time.Time{}, fmt.Errorf("time stamp %q: unrecognised format", truncate(s, 64))
}

// hasZone guesses whether s carries a zone: a day name first (RFC 1123), or
// Z, + or - after the date.
func hasZone(s string) bool {
	if s[0] < '0' || s[0] > '9' {
		return true
	}
	return len(s) > 10 && strings.ContainsAny(s[10:], "Z+-")
}

// zonedLayout guesses, from the separator after the date and the form of
// the zone, the one of zonedLayouts that reads s; "" when it cannot tell.
// The guess only orders the attempts: each failed one allocates its error.
func zonedLayout(s string) string {
	if len(s) < 20 || (s[10] != 'T' && s[10] != ' ') {
		return ""
	}
	t := s[10] == 'T'
	switch i := strings.LastIndexAny(s[19:], "Z+-"); {
	case i < 0:
		return ""
	case s[19+i] == 'Z' || len(s[19+i:]) == 6 && s[19+i+3] == ':': // Z or +07:00
		if s[19+i-1] == ' ' {
			return "2006-01-02 15:04:05 -07:00"
		}
		if t {
			return time.RFC3339Nano
		}
		return "2006-01-02 15:04:05Z07:00"
	case len(s[19+i:]) == 5: // +0700
		if s[19+i-1] == ' ' {
			return "2006-01-02 15:04:05 -0700"
		}
		if t {
			return "2006-01-02T15:04:05Z0700"
		}
		return "2006-01-02 15:04:05Z0700"
	case len(s[19+i:]) == 3: // +07
		if t {
			return "2006-01-02T15:04:05-07"
		}
		return "2006-01-02 15:04:05-07"
	}
	return ""
}

// parseTimeJSON accepts a JSON string in any format ParseTime knows, or a
// JSON number of Unix seconds as webhooks send.
func parseTimeJSON(raw json.RawMessage, loc *time.Location) (time.Time, error) {
	if len(raw) == 0 {
		return time.Time{}, fmt.Errorf("empty time stamp")
	}
	switch raw[0] {
	case '"':
		// A time stamp has no escapes: the bytes are the string.
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && !bytes.ContainsRune(raw[1:len(raw)-1], '\\') {
			return ParseTime(string(raw[1:len(raw)-1]), loc)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("time stamp: %w", err)
		}
		return ParseTime(s, loc)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("time stamp %s: %w", truncate(string(raw), 64), err)
		}
		return unixTime(f)
	default:
		return time.Time{}, fmt.Errorf("time stamp %s: not a string or number", truncate(string(raw), 64))
	}
}

func unixTime(f float64) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("time stamp %v: not a finite number", f)
	}
	if math.Abs(f) >= unixMillisThreshold {
		f /= 1000
	}
	if f < 0 || f >= float64(maxTime.Unix()) {
		return time.Time{}, fmt.Errorf("time stamp %v: outside %s..%s", f, minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	sec, frac := math.Modf(f)
	// Round to microseconds: float64 cannot carry nanoseconds at this magnitude.
	ns := int64(math.Round(frac*1e6)) * 1000
	return time.Unix(int64(sec), ns).UTC(), nil
}

func checkRange(t time.Time, s string) (time.Time, error) {
	if t.Before(minTime) || !t.Before(maxTime) {
		return time.Time{}, fmt.Errorf("time stamp %q: outside %s..%s", truncate(s, 64), minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	return t.UTC(), nil
}

func isNumeric(s string) bool {
	dot := false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
		case r == '.' && !dot:
			dot = true
		case r == '-' && i == 0 && len(s) > 1:
		default:
			return false
		}
	}
	return s != "." && s != "-"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
