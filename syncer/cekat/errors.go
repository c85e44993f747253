package cekat

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Kind classifies a failed call by what the caller should do about it.
type Kind int

const (
	// KindPermanent: the request is wrong or the thing is not there (4xx, an
	// answer of the wrong shape). Repeating it gives the same answer.
	KindPermanent Kind = iota
	// KindTransient: the server or the network failed (5xx, timeouts,
	// resets, a cut body). The same request may succeed later.
	KindTransient
	// KindThrottled: the server refused for rate (429).
	KindThrottled
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindThrottled:
		return "throttled"
	default:
		return "permanent"
	}
}

// Endpoint names, used in errors, counts and metrics labels.
const (
	EndpointList   = "list"
	EndpointDetail = "detail"
	EndpointDelete = "delete"
	EndpointSend   = "send"
)

// Envelope is the decoded error body. The API answers errors in three shapes:
//
//	{"success":false,"status_code":404,"error":{"message":"..."}}
//	{"success":false,"error":{"code":"...","message":"...","details":[{"field":"...","message":"..."}]}}
//	{"success":false,"error":"text","code":"..."}
type Envelope struct {
	StatusCode int
	Code       string
	Message    string
	Details    []EnvelopeDetail
}

// EnvelopeDetail is one field-level complaint of a validation error.
type EnvelopeDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e Envelope) String() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Field, d.Message)
	}
	return b.String()
}

// decodeEnvelope reads any of the three error shapes; ok is false when the
// body is not a recognisable error envelope.
func decodeEnvelope(body []byte) (Envelope, bool) {
	var w struct {
		Success    *bool           `json:"success"`
		StatusCode json.RawMessage `json:"status_code"`
		Code       json.RawMessage `json:"code"`
		Message    string          `json:"message"`
		Error      json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil {
		return Envelope{}, false
	}
	env := Envelope{Code: unquoteID(w.Code), Message: w.Message}
	if sc := unquoteID(w.StatusCode); sc != "" {
		fmt.Sscan(sc, &env.StatusCode)
	}
	switch {
	case len(w.Error) > 0 && w.Error[0] == '"':
		_ = json.Unmarshal(w.Error, &env.Message)
	case len(w.Error) > 0 && w.Error[0] == '{':
		var inner struct {
			Code    json.RawMessage  `json:"code"`
			Message string           `json:"message"`
			Details []EnvelopeDetail `json:"details"`
		}
		if json.Unmarshal(w.Error, &inner) == nil {
			env.Message = firstNonEmpty(inner.Message, env.Message)
			env.Code = firstNonEmpty(unquoteID(inner.Code), env.Code)
			env.Details = inner.Details
		}
	}
	if env.Message == "" && env.Code == "" && len(env.Details) == 0 {
		return Envelope{}, false
	}
	return env, true
}

// Error is the one error type of every failed call. It never carries the
// API key or the backoffice token: those travel in headers only.
type Error struct {
	Endpoint string // list, detail, delete, send
	Method   string
	Path     string // URL path without the query
	Status   int    // HTTP status; 0 when no answer arrived
	Envelope *Envelope
	// RetryAfter is how long the server asked to wait (429 only).
	RetryAfter time.Duration
	Attempts   int
	kind       Kind
	final      bool  // not to be retried whatever its kind
	unsent     bool  // the request was not written: the server cannot have acted on it
	Err        error // the cause: a network or decode error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cekat %s %s %s", e.Endpoint, e.Method, e.Path)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Envelope != nil {
		fmt.Fprintf(&b, ": %s", e.Envelope)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Kind says whether the failure is permanent, transient or throttling.
func (e *Error) Kind() Kind { return e.kind }

// KindOf classifies any error returned by the client; errors that are not
// an *Error (a cancelled context) count as transient.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.kind
	}
	return KindTransient
}

// IsNotFound reports whether the API answered 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsAuthRefused reports whether the API refused the call's credential
// (HTTP 401 or 403). Every call to an API carries the same credential, so
// the calls after it would be refused too.
func IsAuthRefused(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// ErrMalformedBody marks a 2xx answer whose body is not valid JSON: most
// often a body cut short, so it is retried like a network failure.
var ErrMalformedBody = errors.New("malformed JSON body")

// ErrUnexpectedShape marks valid JSON that is not the documented answer.
var ErrUnexpectedShape = errors.New("unexpected answer shape")

func kindForStatus(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return KindThrottled
	case status == http.StatusRequestTimeout, status >= 500:
		return KindTransient
	default:
		return KindPermanent
	}
}
