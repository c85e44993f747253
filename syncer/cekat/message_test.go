package cekat

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const documentedDetail = `{
  "id": "msg_abc123",
  "conversation_id": "conv_xyz789",
  "direction": "outbound",
  "type": "text",
  "status": "delivered",
  "content": {"text": "Your order has been shipped!"},
  "sender": {"name": "Support Bot", "user_id": "bot_001"},
  "recipient": {"phone": "+62812345678"},
  "timestamp": "2025-03-27T14:30:00Z",
  "delivered_at": "2025-03-27T14:30:05Z",
  "read_at": "2025-03-27T14:35:00Z"
}`

const flatReal = `{
  "id": "3f1c2a9e-7b4d-4c1e-9a8f-0d2b6e5c4a31",
  "message": "Hi, I need help with my order",
  "conversation_id": "9b0e7c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
  "sent_by": "6281234",
  "sent_by_name": "John Doe",
  "sent_by_type": "user",
  "media_type": "sticker",
  "media_url": "https://cdn.example/s.webp",
  "status": "read",
  "is_template": false,
  "created_at": "2025-03-27 22:00:00",
  "updated_at": "2025-03-27 15:00:01.5+00",
  "additional_data": {"wa_id": "x", "reply_to": "3f1c2a9e-0000", "filename": "s.webp"},
  "contact": {"phone_number": "+62812345678", "name": "John"},
  "inbox": {"id": "inbox_1"},
  "location": {"lat": -6.2, "lng": 106.8}
}`

func ptime(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	t = t.UTC()
	return &t
}

func TestDecodeMessage(t *testing.T) {
	jakarta, _ := time.LoadLocation("Asia/Jakarta")
	tests := []struct {
		name string
		raw  string
		want Message
	}{
		{
			name: "documented detail",
			raw:  documentedDetail,
			want: Message{
				ID: "msg_abc123", ConversationID: "conv_xyz789", Direction: "outbound", Type: "text",
				Status: "delivered", Text: "Your order has been shipped!", SenderName: "Support Bot",
				SenderID: "bot_001", RecipientPhone: "+62812345678", Timestamp: *ptime("2025-03-27T14:30:00Z"),
				DeliveredAt: ptime("2025-03-27T14:30:05Z"), ReadAt: ptime("2025-03-27T14:35:00Z"),
			},
		},
		{
			name: "documented list item, inbound, direction from the field",
			raw: `{"id":"msg_001","conversation_id":"conv_abc123","direction":"inbound","type":"text",
				"content":{"text":"Hi"},"sender":{"name":"John Doe","phone":"+62812345678"},"timestamp":"2025-03-27T15:00:00Z"}`,
			want: Message{ID: "msg_001", ConversationID: "conv_abc123", Direction: "inbound", Type: "text", Text: "Hi",
				SenderName: "John Doe", SenderPhone: "+62812345678", Timestamp: *ptime("2025-03-27T15:00:00Z")},
		},
		{
			name: "documented media",
			raw: `{"id":"msg_9","direction":"outbound","type":"document","content":{"url":"https://x/y.pdf","caption":"Invoice","filename":"y.pdf"},
				"sender":{"user_id":"agent_1"},"timestamp":"2025-03-27T15:00:00.123Z","reply_to":"msg_1"}`,
			want: Message{ID: "msg_9", Direction: "outbound", Type: "document", MediaURL: "https://x/y.pdf", Caption: "Invoice",
				Filename: "y.pdf", SenderID: "agent_1", ReplyTo: "msg_1", Timestamp: *ptime("2025-03-27T15:00:00.123Z")},
		},
		{
			name: "flat real shape with unknown type and fields",
			raw:  flatReal,
			want: Message{
				ID: "3f1c2a9e-7b4d-4c1e-9a8f-0d2b6e5c4a31", ConversationID: "9b0e7c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
				Direction: "inbound", Type: "sticker", Status: "read", Caption: "Hi, I need help with my order",
				MediaURL: "https://cdn.example/s.webp", Filename: "s.webp", ReplyTo: "3f1c2a9e-0000", SenderName: "John Doe", SenderID: "6281234", SenderType: "user",
				SenderPhone: "+62812345678", Timestamp: *ptime("2025-03-27T15:00:00Z"), UpdatedAt: ptime("2025-03-27T15:00:01.5Z"),
			},
		},
		{
			name: "flat outbound agent, numeric id, unix time, template as string",
			raw: `{"id":12345,"message":"Hello","sent_by_type":"agent","is_template":"true","created_at":1743087600,
				"contact":{"phone":"+628"},"status":"sent"}`,
			want: Message{ID: "12345", Direction: "outbound", Type: "text", Status: "sent", Text: "Hello", SenderType: "agent",
				RecipientPhone: "+628", IsTemplate: true, Timestamp: *ptime("2025-03-27T15:00:00Z")},
		},
		{
			name: "odd optional time kept as a warning",
			raw:  `{"id":"m1","timestamp":"2025-03-27T15:00:00Z","delivered_at":"soon","read_at":null,"content":{"text":"x"}}`,
			want: Message{ID: "m1", Type: "text", Text: "x", Timestamp: *ptime("2025-03-27T15:00:00Z"),
				Warnings: []string{`delivered_at: time stamp "soon": unrecognised format`}},
		},
		{
			name: "no type, no text",
			raw:  `{"id":"m2","timestamp":"2025-03-27T15:00:00Z","content":"not an object"}`,
			want: Message{ID: "m2", Type: "unknown", Timestamp: *ptime("2025-03-27T15:00:00Z")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeMessage(json.RawMessage(tt.raw), jakarta)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Raw) != strings.TrimSpace(tt.raw) {
				t.Errorf("Raw not kept verbatim")
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Message{}, "Raw")); diff != "" {
				t.Errorf("DecodeMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	tests := []struct {
		raw, wantErr, wantID string
	}{
		{`{"timestamp":"2025-03-27T15:00:00Z"}`, "decode message: missing id", ""},
		{`{"id":"","timestamp":"2025-03-27T15:00:00Z"}`, "decode message: missing id", ""},
		{`{"id":null,"timestamp":"2025-03-27T15:00:00Z"}`, "decode message: missing id", ""},
		{`{"id":{"x":1},"timestamp":"2025-03-27T15:00:00Z"}`, "decode message: missing id", ""},
		{`{"id":"m1"}`, "decode message m1: missing timestamp and created_at", "m1"},
		{`{"id":"m1","timestamp":"27/03/2025"}`, `decode message m1: timestamp: time stamp "27/03/2025": unrecognised format`, "m1"},
		{`{"id":"m1","created_at":true}`, "decode message m1: created_at: time stamp true: not a string or number", "m1"},
		{`[1,2]`, "decode message: not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage", ""},
		{`null`, "decode message: not a JSON object: null", ""},
		{`"msg"`, "decode message: not a JSON object: json: cannot unmarshal string into Go value of type map[string]json.RawMessage", ""},
	}
	for _, tt := range tests {
		_, err := DecodeMessage(json.RawMessage(tt.raw), time.UTC)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("DecodeMessage(%s) err = %v, want a *DecodeError", tt.raw, err)
			continue
		}
		if err.Error() != tt.wantErr {
			t.Errorf("DecodeMessage(%s) err = %q, want %q", tt.raw, err, tt.wantErr)
		}
		if de.ID != tt.wantID || string(de.Raw) != tt.raw {
			t.Errorf("DecodeMessage(%s): id %q raw %q, want the record kept", tt.raw, de.ID, de.Raw)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		documentedDetail, flatReal,
		`{"id":"m","timestamp":1743087600}`,
		`{"id":"m","created_at":"2025-03-27 15:00:00.123456+00","media_type":"interactive","interactive":{"x":[1]}}`,
		`{"id":"m","timestamp":"2025-03-27 22:00:00","sender":{"phone":"+62"},"content":{"text":"a"}}`,
		`{"id":7}`, `{}`, `[]`, `null`, `{"id":"m","timestamp":"x"}`,
	} {
		f.Add([]byte(s))
	}
	jakarta, _ := time.LoadLocation("Asia/Jakarta")
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeMessage(raw, jakarta)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		if m.ID == "" {
			t.Fatalf("decoded a message without an id from %q", raw)
		}
		if m.Timestamp.IsZero() || m.Timestamp.Before(minTime) || !m.Timestamp.Before(maxTime) {
			t.Fatalf("decoded time stamp %v out of range from %q", m.Timestamp, raw)
		}
		if len(m.Raw) == 0 {
			t.Fatalf("raw JSON not kept")
		}
	})
}
