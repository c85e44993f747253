// Package cekatsim is a local simulator of the Cekat "Classic" messages API.
//
// It serves the documented contract (nested messages, msg_ ids, RFC3339 Z time
// stamps, cursor pagination) or the shape seen on real deployments (flat rows,
// UUID ids, mixed time formats, sometimes no pagination at all), with the
// authentication variants, rate limits, faults and malformed data a client of
// the real service has to survive. Everything is deterministic from a seed:
// message i of a conversation is generated on demand from a hash of
// (seed, conversation, i), so a simulator holding a million messages stays
// small.
//
// The package deliberately imports nothing else from this repository: it is an
// independent reading of the API documentation and of the field notes, so that
// integration tests catch disagreements with the real client.
package cekatsim

import (
	"errors"
	"fmt"
	"time"
)

// Shape selects which of the two observed wire formats the simulator serves.
type Shape string

const (
	// ShapeDocumented serves the documented nested messages: ids like
	// msg_<hex>, RFC3339 "Z" time stamps, direction/type/content/sender.
	ShapeDocumented Shape = "documented"
	// ShapeReal serves the flat rows seen on real deployments: lowercase UUID
	// ids, message/sent_by_type/media_type/..., time stamps in mixed formats.
	ShapeReal Shape = "real"
)

// AuthMode selects which credential headers the messages API accepts.
type AuthMode string

const (
	AuthBearer AuthMode = "bearer"  // Authorization: Bearer KEY
	AuthAPIKey AuthMode = "api_key" // api_key: KEY
	AuthBoth   AuthMode = "both"    // both headers, both correct
	AuthAny    AuthMode = "any"     // either header is enough
)

// RateHeaders selects which X-RateLimit-* headers the rate limit sends.
type RateHeaders string

const (
	// RateHeadersAll sends X-RateLimit-Limit, -Remaining and -Reset (Unix
	// seconds), as a captured production answer showed.
	RateHeadersAll RateHeaders = "all"
	// RateHeadersLimitRemaining sends X-RateLimit-Limit and -Remaining only,
	// as the documentation lists them: the client must infer when the window
	// ends.
	RateHeadersLimitRemaining RateHeaders = "limit_remaining"
	// RateHeadersNone sends no X-RateLimit-* header; a 429 still carries
	// Retry-After when Options.RetryAfter is set.
	RateHeadersNone RateHeaders = "none"
)

// Back-office authentication modes.
const (
	BackofficeAccessToken = "access_token" // access_token: TOKEN (seen in practice)
	BackofficeBearer      = "bearer"       // Authorization: Bearer TOKEN (documented)
)

// Defaults applied by New when the corresponding option is zero.
const (
	DefaultAPIKey          = "sim-api-key"
	DefaultBackofficeToken = "sim-backoffice-token"
	DefaultMaxDeleteBatch  = 100
	DefaultListLimit       = 50
	MaxListLimit           = 100
)

// DefaultStart is the simulated clock start when Options.Start is zero.
var DefaultStart = time.Date(2025, 3, 27, 15, 0, 0, 0, time.UTC)

// Options configure a simulator. The zero value is usable: a documented-shape
// server with no conversations.
type Options struct {
	Seed          int64
	Conversations int   // number of conversations (ignored when MessageCounts is set)
	MeanMessages  int   // approximate mean of the heavy-tailed message count per conversation
	MessageCounts []int // exact message count per conversation; overrides Conversations/MeanMessages

	Shape Shape    // default ShapeDocumented
	Auth  AuthMode // default AuthAny

	APIKey          string // default DefaultAPIKey
	BackofficeToken string // default DefaultBackofficeToken; must differ from APIKey
	BackofficeAuth  string // "access_token" or "bearer"; default "bearer" for the documented shape, "access_token" for the real one

	NoPagination bool // list ignores limit/before and returns the whole history without `pagination`

	RatePerMinute int  // 0 = unlimited; fixed 60 s windows (see RateWindowAligned)
	RatePerDay    int  // 0 = unlimited; per UTC calendar day
	RetryAfter    bool // whether a 429 carries Retry-After

	// RateHeaders selects the X-RateLimit-* headers sent (default
	// RateHeadersAll).
	RateHeaders RateHeaders
	// RateWindowAligned makes the per-minute windows fixed minutes of the
	// clock (second 0 to second 59) instead of 60 s from the first request
	// after the previous window ended.
	RateWindowAligned bool

	Latency time.Duration // added to every API request (not to /_sim/)

	Fault5xx      float64 // probability of a 500/502/503 with an error envelope
	FaultDrop     float64 // probability that the connection is closed with no answer
	FaultTruncate float64 // probability that a 200 answer's JSON body is cut in the middle

	MalformedRate float64 // fraction of generated messages served malformed (deterministic per message)
	LiveRate      float64 // probability that 1..3 new messages arrive in a conversation before a list request on it (or in a random one before a GET /api/conversations)

	// OddIDs puts characters that need escaping into every message and
	// conversation id, in the middle: ', /, ?, %, #, spaces, +, ;, quotes,
	// a backslash and unicode, and literal escapes such as %41 and %2F (see
	// oddFragments). Every endpoint takes them: the list's conversation_id
	// and before (query-escaped once), GET /messages/{id} (the id must be
	// path-escaped exactly once: the escaped path is decoded once, so an id
	// with '/' works as %2F and an id escaped twice is answered 404), sends
	// and the back-office delete (JSON).
	OddIDs bool
	// CursorCycleConversations makes the list cursors of that many
	// conversations cycle: the first ones in creation order with at least
	// three generated messages (Server.CursorCycles names them). Such a
	// conversation has a cut at position Cut = generated/2 - 1 (0 = oldest).
	// Pages above the cut are served as usual; the page that reaches the cut
	// serves the messages from the cut up only, has_more true and before = A
	// (the message at Cut+1); the page before A is the message at the cut,
	// with before = B (Cut+2); the page before B is from the cut up to B,
	// with before = A again. So a walk goes A -> B -> A -> ... with has_more
	// true for ever, whatever its limit, and every message from the cut up
	// is listed. Messages below the cut are never listed (the detail
	// endpoint serves them); they stay in the truth, flagged Unlisted.
	// Ignored with NoPagination.
	CursorCycleConversations int
	// ForeignItemRate is the probability that a non-empty list page also
	// holds one message of another conversation, with that conversation's
	// conversation_id, at some index of the page. It is decided per
	// (conversation, page end) from the seed, so asking for the same page
	// again brings the same stranger; pagination.before stays the asked
	// conversation's own cursor. The stranger is a real, well-formed message
	// of its own conversation, and part of that one's truth only.
	ForeignItemRate float64

	// ConversationOrder is the order of GET /api/conversations (undocumented
	// upstream): OrderActivity (default), OrderCreated or OrderID. See
	// conversations.go for the cursor and what a walk is guaranteed.
	ConversationOrder ConversationOrder
	// LiveNewConversationRate is the probability that a new conversation
	// (Server.AddConversation) starts before a GET /api/conversations or
	// GET /api/messages request.
	LiveNewConversationRate float64

	// InboxOrder is the order of GET /api/messages (undocumented upstream):
	// InboxNewestFirst (default), InboxOldestFirst or InboxUnordered; see
	// inbox.go. NoInboxList answers that endpoint 404, as a deployment
	// without it does.
	InboxOrder  InboxOrder
	NoInboxList bool

	// Webhooks (webhooks.go): events are POSTed to WebhookURL, when set.
	WebhookURL               string
	WebhookSecret            string            // HMAC-SHA256 key; default DefaultWebhookSecret
	WebhookSignatureHeader   string            // default DefaultWebhookSignatureHeader
	WebhookSignatureEncoding SignatureEncoding // default SignatureHex
	WebhookShape             WebhookShape      // default WebhookDocumented
	WebhookConversationID    bool              // data carries conversation_id
	WebhookRetries           int               // further attempts after a failed one; default DefaultWebhookRetries, negative = none
	WebhookRetryBackoff      time.Duration     // before the first retry, doubling; default DefaultWebhookRetryBackoff
	// Webhook faults: probabilities per event (loss, duplicate, reorder) or
	// per copy sent (bad signature); WebhookDelay is the largest random delay
	// of each copy (0 = none).
	WebhookLoss, WebhookDuplicate, WebhookReorder, WebhookBadSignature float64
	WebhookDelay                                                       time.Duration

	Start          time.Time // simulated clock start (truncated to the second); default DefaultStart
	MaxDeleteBatch int       // delete rejects more ids than this with 400; default 100

	// Now is the wall clock used for rate-limit windows (clients wait real
	// time). Nil means time.Now. Tests inject a fake clock here.
	Now func() time.Time
}

func (o *Options) normalize() error {
	switch o.Shape {
	case "":
		o.Shape = ShapeDocumented
	case ShapeDocumented, ShapeReal:
	default:
		return fmt.Errorf("cekatsim: unknown shape %q (want documented or real)", o.Shape)
	}
	switch o.Auth {
	case "":
		o.Auth = AuthAny
	case AuthBearer, AuthAPIKey, AuthBoth, AuthAny:
	default:
		return fmt.Errorf("cekatsim: unknown auth mode %q (want bearer, api_key, both or any)", o.Auth)
	}
	switch o.BackofficeAuth {
	case "":
		if o.Shape == ShapeReal {
			o.BackofficeAuth = BackofficeAccessToken
		} else {
			o.BackofficeAuth = BackofficeBearer
		}
	case BackofficeAccessToken, BackofficeBearer:
	default:
		return fmt.Errorf("cekatsim: unknown backoffice auth %q (want access_token or bearer)", o.BackofficeAuth)
	}
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.BackofficeToken == "" {
		o.BackofficeToken = DefaultBackofficeToken
	}
	if o.APIKey == o.BackofficeToken {
		return errors.New("cekatsim: APIKey and BackofficeToken must differ")
	}
	if o.Conversations < 0 || o.MeanMessages < 0 {
		return errors.New("cekatsim: Conversations and MeanMessages must not be negative")
	}
	for _, n := range o.MessageCounts {
		if n < 0 {
			return errors.New("cekatsim: MessageCounts must not be negative")
		}
		if n >= 1<<posBits {
			return fmt.Errorf("cekatsim: a conversation cannot hold %d messages", n)
		}
	}
	if o.RatePerMinute < 0 || o.RatePerDay < 0 {
		return errors.New("cekatsim: rate limits must not be negative")
	}
	switch o.RateHeaders {
	case "":
		o.RateHeaders = RateHeadersAll
	case RateHeadersAll, RateHeadersLimitRemaining, RateHeadersNone:
	default:
		return fmt.Errorf("cekatsim: unknown rate headers %q (want all, limit_remaining or none)", o.RateHeaders)
	}
	if o.Latency < 0 {
		return errors.New("cekatsim: Latency must not be negative")
	}
	for name, p := range map[string]float64{
		"Fault5xx": o.Fault5xx, "FaultDrop": o.FaultDrop, "FaultTruncate": o.FaultTruncate,
		"MalformedRate": o.MalformedRate, "LiveRate": o.LiveRate,
	} {
		if p < 0 || p > 1 || p != p {
			return fmt.Errorf("cekatsim: %s must be within [0, 1], got %v", name, p)
		}
	}
	if o.Fault5xx+o.FaultDrop+o.FaultTruncate > 1+1e-9 {
		return errors.New("cekatsim: fault probabilities add up to more than 1")
	}
	if o.CursorCycleConversations < 0 {
		return errors.New("cekatsim: CursorCycleConversations must not be negative")
	}
	if p := o.ForeignItemRate; p < 0 || p > 1 || p != p {
		return fmt.Errorf("cekatsim: ForeignItemRate must be within [0, 1], got %v", p)
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC().Truncate(time.Second)
	if o.MaxDeleteBatch == 0 {
		o.MaxDeleteBatch = DefaultMaxDeleteBatch
	}
	if o.MaxDeleteBatch < 0 {
		return errors.New("cekatsim: MaxDeleteBatch must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.normalizeInbox(); err != nil {
		return err
	}
	return o.normalizeDiscovery()
}
