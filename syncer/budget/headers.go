package budget

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// headerInt reads a non-negative integer header ("12", also "12.0").
func headerInt(h http.Header, name string) (int, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n, n >= 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// parseReset reads X-RateLimit-Reset: Unix seconds (above 1e9), or seconds
// from now when small, as the client reads it.
func parseReset(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return time.Time{}, false
	}
	if n > 1e9 {
		sec, frac := math.Modf(n)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	return now.Add(time.Duration(n * float64(time.Second))), true
}
