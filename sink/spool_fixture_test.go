package sink

import "time"

// spoolFixture is what testdata/format1.spool holds: written by the spool
// of before the header (format 1), in this order: rows[:2], quar, checks,
// convs, state, rows[2:].
type spoolFixture struct {
	rows   []MessageRow
	quar   []QuarantineRow
	checks []StatusCheck
	convs  []ConversationRow
	state  State
}

func format1Fixture() spoolFixture {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t.UTC()
	}
	ptr := func(s string) *time.Time { t := at(s); return &t }
	return spoolFixture{
		rows: []MessageRow{
			{ConversationID: "conv-1", MessageID: "msg-1", Direction: "outbound", Type: "image", Status: "read",
				Text: "héllo\x00\n\"", MediaURL: "https://media.example/1.jpg", Caption: "a caption", Filename: "1.jpg",
				SenderName: "Agent Smith", SenderPhone: "6281100", SenderID: "agent-7", SenderType: "agent",
				SenderRole: RoleAgent, RecipientPhone: "6281299", ReplyTo: "msg-0", IsTemplate: true,
				SentAt: at("2025-03-27T15:00:00.123456789Z"), DeliveredAt: ptr("2025-03-27T15:00:01.5Z"),
				ReadAt: ptr("2025-03-27T15:00:02.25Z"), UpdatedAt: ptr("2025-03-27T15:00:03Z"), Enriched: true,
				EnrichError: "", Raw: `{"id":"msg-1"}`, DetailRaw: `{"id":"msg-1","status":"read"}`,
				FetchedAt: at("2025-03-27T15:01:00.000000001Z"), Version: 1<<62 + 3},
			{ConversationID: "conv-1", MessageID: "msg-2"},
			{ConversationID: "conv-2", MessageID: "msg-3", Direction: "inbound", Type: "text", Status: "received",
				Text: "pre-1970", SenderType: "customer", SenderRole: RoleCustomer, SentAt: at("1969-12-31T23:59:59.999999999Z"),
				EnrichError: "detail: 500", Raw: `{}`, FetchedAt: at("2025-03-28T00:00:00Z"), Version: 1},
		},
		quar: []QuarantineRow{{ReceivedAt: at("2025-03-27T15:02:00Z"), RunID: "run-1", Endpoint: "messages",
			ConversationID: "conv-1", MessageID: "bad-1", Error: "decode: bad time", Raw: `{"id":"bad-1"}`, RawHash: 42}},
		checks: []StatusCheck{{ConversationID: "conv-1", MessageID: "msg-1", SentAt: at("2025-03-27T15:00:00Z"),
			Until: at("2025-04-03T15:00:00Z"), CheckedAt: at("2025-03-27T15:01:00Z"), NextCheckAt: at("2025-03-27T16:01:00Z"),
			Checks: 2, Open: true, Version: 9}},
		convs: []ConversationRow{{ConversationID: "conv-1", InboxID: "inbox-1", InboxName: "Sales", ContactID: "contact-1",
			ContactName: "Budi", ContactPhone: "6281299", PlatformType: "whatsapp", StageStatus: "assigned",
			HandledByID: "agent-7", HandledByName: "Agent Smith", Labels: []string{"vip", "lead"},
			LastMessageAt: ptr("2025-03-27T15:00:00Z"), CreatedAt: ptr("2025-03-01T08:00:00Z"), Raw: `{"id":"conv-1"}`,
			ListedAt: at("2025-03-27T15:02:00Z"), Activity: "a#1", SyncedActivity: "a#1", Version: 11}},
		state: State{ConversationID: "conv-1", HeadMessageID: "msg-1", HeadSentAt: at("2025-03-27T15:00:00.123456789Z"),
			Gaps: []Gap{{Before: "msg-2", Stop: ""}}, BackfillComplete: true, LastAttemptAt: at("2025-03-27T15:02:00Z"),
			LastSuccessAt: at("2025-03-27T15:02:00Z"), LastError: "", NextDueAt: at("2025-03-27T15:07:00Z"), IdleRuns: 3,
			UpdatedAt: at("2025-03-27T15:02:00.000000005Z"), Version: 7},
	}
}
