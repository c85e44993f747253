package sink

import "time"

// MessageRow is one version of one archived message: a row of the messages
// table. The table collapses versions per (conversation_id, message_id),
// keeping the highest Version.
type MessageRow struct {
	ConversationID string
	MessageID      string
	Direction      string
	Type           string
	Status         string
	Text           string
	MediaURL       string
	Caption        string
	Filename       string
	SenderName     string
	SenderPhone    string
	SenderID       string
	SenderType     string
	// SenderRole is customer, agent, bot, system or unknown: see SenderRole.
	// The archive fills it in when empty.
	SenderRole     string
	RecipientPhone string
	ReplyTo        string
	IsTemplate     bool
	SentAt         time.Time
	DeliveredAt    *time.Time
	ReadAt         *time.Time
	UpdatedAt      *time.Time
	// StatusSource is empty when Status, DeliveredAt and ReadAt are the
	// API's answer; webhook:<event> when an event's time stands in for
	// them until a detail call confirms it (provisional).
	StatusSource string
	Enriched     bool
	EnrichError  string
	Raw          string // the message as the list answer had it
	DetailRaw    string // the detail answer, when enriched
	FetchedAt    time.Time
	Version      uint64
}

// QuarantineRow is a record that could not be decoded, kept whole.
type QuarantineRow struct {
	ReceivedAt     time.Time
	RunID          string
	Endpoint       string
	ConversationID string
	MessageID      string
	Error          string
	Raw            string
	RawHash        uint64 // set by the archive
}

// Gap is a stretch of a conversation's history not yet archived: paging
// the list endpoint with before=Before reaches it, and it ends at the
// message Stop (already archived), or at the start of the history when
// Stop is empty.
type Gap struct {
	Before string
	Stop   string
}

// State is what the archive knows of one conversation's sync. It is saved
// only after the rows it describes are in ClickHouse, so a crash leaves a
// state that is behind the archive, never ahead of it.
type State struct {
	ConversationID string
	Gone           bool // the API answered 404
	// HeadMessageID is the newest message archived by a walk from the top:
	// the next walk from the top stops when it meets it.
	HeadMessageID string
	HeadSentAt    time.Time
	// Gaps are walks left unfinished, newest first.
	Gaps             []Gap
	BackfillComplete bool
	LastAttemptAt    time.Time
	LastSuccessAt    time.Time
	LastError        string
	NextDueAt        time.Time
	IdleRuns         uint32
	UpdatedAt        time.Time
	Version          uint64
	// PurgedAt is when the retention purge deleted the conversation upstream
	// (zero: not purged). A purged conversation is not synced again.
	PurgedAt time.Time
}

// SweepMark is where the listings of a whole inbox (GET /api/messages) got
// to: Mark is the newest created_at they listed (the API's clock), and every
// conversation synced since ChainStart (the archiver's clock: its state's
// LastSuccessAt not before it) holds every message created up to Mark. It
// is saved only after the rows and states of the run that listed it are
// stored.
type SweepMark struct {
	Scope      string // the shard and inbox the listing covers
	Mark       time.Time
	ChainStart time.Time
	Order      string // the order the listing was found in
	UpdatedAt  time.Time
	Version    uint64
}

// RunRow summarises one sync run.
type RunRow struct {
	RunID string
	// Kind is what made the requests: RunSync (the default when empty),
	// RunWebhook, RunPurge or RunErase.
	Kind string
	// Shard is the archiver shard that made the run ("index/count"); ""
	// when not sharded.
	Shard         string
	StartedAt     time.Time
	FinishedAt    time.Time
	Result        string
	Conversations uint32
	NewMessages   uint64
	Enriched      uint64
	Rechecked     uint64
	Quarantined   uint64
	Requests      uint64
	Error         string
	// Version grows with every row written for the run; the highest wins.
	Version uint64
}

// Kinds of run.
const (
	RunSync    = "sync"
	RunWebhook = "webhook"
	RunPurge   = "purge"
	RunErase   = "erase"
)

// RunRunning is the result of a run's row while the run goes on, and of a
// run that was killed.
const RunRunning = "running"

// StatusCheck is a message's place on the re-check schedule: a row of the
// status_checks table. The newest Version per message wins.
type StatusCheck struct {
	ConversationID string
	MessageID      string
	SentAt         time.Time
	Until          time.Time // when it leaves the schedule; never moves earlier
	CheckedAt      time.Time // when its status was last fetched
	NextCheckAt    time.Time
	Checks         uint16
	Open           bool // false once its status is final or the window has ended
	// Kind says why the message is on the schedule, which orders what a
	// short API budget serves: CheckEnrichNew, CheckRecheck, CheckEnrichHistory.
	Kind    uint8
	Version uint64
}

// The kinds of StatusCheck, as stored in status_checks.kind.
const (
	// CheckRecheck: a status that may still change, or a detail call that
	// failed for a reason that may pass.
	CheckRecheck uint8 = 0
	// CheckEnrichNew: a new message archived from its list item, waiting
	// for its detail call.
	CheckEnrichNew uint8 = 1
	// CheckEnrichHistory: a message of the history archived from its list
	// item, waiting for its detail call.
	CheckEnrichHistory uint8 = 2
)

// CheckRank orders the kinds as a short budget serves them: new messages'
// enrichment, then re-checks, then the history's enrichment.
func CheckRank(kind uint8) int {
	switch kind {
	case CheckEnrichNew:
		return 0
	case CheckRecheck:
		return 1
	}
	return 2
}

// CheckKindName is a kind's name, as metrics and status show it.
func CheckKindName(kind uint8) string {
	switch kind {
	case CheckEnrichNew:
		return "new"
	case CheckRecheck:
		return "recheck"
	}
	return "history"
}

// ArchivedMessage is what a walk needs of a message already archived: that
// it is there, and the status it was archived with.
type ArchivedMessage struct {
	Status    string
	UpdatedAt *time.Time
	Enriched  bool
}

// ConversationRow is what the conversation list says of one conversation,
// and how far the archiver synced it: a row of the conversations table.
type ConversationRow struct {
	ConversationID string
	InboxID        string
	InboxName      string
	ContactID      string
	ContactName    string
	ContactPhone   string
	PlatformType   string
	StageStatus    string
	HandledByID    string
	HandledByName  string
	Labels         []string
	LastMessageAt  *time.Time
	CreatedAt      *time.Time
	ResolvedAt     *time.Time
	Raw            string
	ListedAt       time.Time
	// Activity is last_message.created_at as listed with a hash of its
	// text; SyncedActivity the activity listed before the last complete walk
	// of new messages.
	Activity       string
	SyncedActivity string
	Version        uint64
}

// The sender roles of SenderRole.
const (
	RoleCustomer = "customer"
	RoleAgent    = "agent"
	RoleBot      = "bot"
	RoleSystem   = "system"
	RoleUnknown  = "unknown"
)

// SenderRole says who sent a message, from what its answer said: the
// sender type (the flat shape's sent_by_type, a documented sender's type),
// else the direction (an inbound message is the customer's). It never
// guesses from the spelling of ids or names: an outbound message of the
// documented shape, which names no sender type, is unknown.
//
// The DEFAULT of messages.sender_role (migration 00011) is the same rule in
// SQL, for rows that other writers insert and for the archive copied by
// 00012; a test holds the two together. ClickHouse's lower() folds ASCII
// only, and so does this.
func SenderRole(direction, senderType string) string {
	switch asciiLower(senderType) {
	case "user", "customer", "contact":
		return RoleCustomer
	case "agent":
		return RoleAgent
	case "bot", "ai":
		return RoleBot
	case "system":
		return RoleSystem
	}
	if senderType == "" && direction == "inbound" {
		return RoleCustomer
	}
	return RoleUnknown
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
