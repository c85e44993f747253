package cekat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decodeMessageReference is DecodeMessage written plainly with encoding/json
// into maps: FuzzDecodeMessageSameAsReference holds the single-pass reader
// to exactly its results.
func decodeMessageReference(raw json.RawMessage, loc *time.Location) (Message, error) {
	raw = bytes.TrimSpace(raw)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Message{}, &DecodeError{Raw: raw, Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	if obj == nil {
		return Message{}, &DecodeError{Raw: raw, Err: errors.New("not a JSON object: null")}
	}
	f := fields(obj)
	m := Message{Raw: append(json.RawMessage(nil), raw...)}

	m.ID = f.str("id")
	if m.ID == "" {
		return Message{}, &DecodeError{Raw: m.Raw, Err: errors.New("missing id")}
	}
	tsKey := "timestamp"
	if !f.has(tsKey) {
		tsKey = "created_at"
	}
	if !f.has(tsKey) {
		return Message{}, &DecodeError{ID: m.ID, Raw: m.Raw, Err: errors.New("missing timestamp and created_at")}
	}
	ts, err := parseTimeJSON(obj[tsKey], loc)
	if err != nil {
		return Message{}, &DecodeError{ID: m.ID, Raw: m.Raw, Err: fmt.Errorf("%s: %w", tsKey, err)}
	}
	m.Timestamp = ts

	content := f.object("content")
	sender := f.object("sender")
	recipient := f.object("recipient")
	contact := f.object("contact")

	m.ConversationID = f.str("conversation_id")
	m.Type = firstNonEmpty(f.str("type"), f.str("media_type"))
	m.Status = f.str("status")
	extra := f.object("additional_data")
	m.Text = firstNonEmpty(content.str("text"), f.str("text"))
	m.Caption = firstNonEmpty(content.str("caption"), f.str("caption"))
	// The flat shape has one `message` field: the text of a text message,
	// the caption of a media message.
	if msg := f.str("message"); msg != "" {
		if mediaTypes[strings.ToLower(m.Type)] {
			m.Caption = firstNonEmpty(m.Caption, msg)
		} else {
			m.Text = firstNonEmpty(m.Text, msg)
		}
	}
	m.MediaURL = firstNonEmpty(content.str("url"), f.str("media_url"), f.str("file_url"))
	m.Filename = firstNonEmpty(content.str("filename"), f.str("filename"), extra.str("filename"))
	m.SenderName = firstNonEmpty(sender.str("name"), f.str("sent_by_name"))
	m.SenderID = firstNonEmpty(sender.str("user_id"), f.str("sent_by"))
	m.SenderType = firstNonEmpty(sender.str("type"), f.str("sent_by_type"))
	m.SenderPhone = sender.str("phone")
	m.RecipientPhone = recipient.str("phone")
	m.IsTemplate = f.boolean("is_template")
	m.ReplyTo = firstNonEmpty(f.str("reply_to"), f.str("reply-to"), f.str("reply_to_message_id"),
		f.object("reply_to").str("id"), f.object("reply-to").str("id"), extra.str("reply_to"))

	m.Direction = strings.ToLower(f.str("direction"))
	if m.Direction == "" {
		m.Direction = directionOfReference(m.SenderType, sender)
	}
	// In the flat shape the customer appears as contact: the sender of an
	// inbound message, the recipient of an outbound one.
	if phone := firstNonEmpty(contact.str("phone"), contact.str("phone_number")); phone != "" {
		switch m.Direction {
		case "inbound":
			if m.SenderPhone == "" {
				m.SenderPhone = phone
			}
		case "outbound":
			if m.RecipientPhone == "" {
				m.RecipientPhone = phone
			}
		}
	}
	if m.Type == "" {
		m.Type = "text"
		if m.Text == "" && m.MediaURL == "" {
			m.Type = "unknown"
		}
	}

	m.DeliveredAt = optionalTimeReference(&m, obj, "delivered_at", loc)
	m.ReadAt = optionalTimeReference(&m, obj, "read_at", loc)
	m.UpdatedAt = optionalTimeReference(&m, obj, "updated_at", loc)
	return m, nil
}

func optionalTimeReference(m *Message, obj map[string]json.RawMessage, key string, loc *time.Location) *time.Time {
	raw, ok := obj[key]
	if !ok || isNull(raw) || string(raw) == `""` {
		return nil
	}
	t, err := parseTimeJSON(raw, loc)
	if err != nil {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%s: %v", key, err))
		return nil
	}
	return &t
}

func directionOfReference(senderType string, sender fields) string {
	switch strings.ToLower(senderType) {
	case "user", "customer", "contact":
		return "inbound"
	case "agent", "system", "bot", "ai":
		return "outbound"
	}
	// Documented shape: customers carry a phone, agents and bots a user_id.
	switch {
	case sender.str("user_id") != "":
		return "outbound"
	case sender.str("phone") != "":
		return "inbound"
	}
	return ""
}

func FuzzDecodeMessageSameAsReference(f *testing.F) {
	for _, s := range []string{
		documentedDetail, flatReal,
		`{"id":"m","timestamp":1743087600}`,
		`{"id":"m","created_at":"2025-03-27 15:00:00.123456+00","media_type":"interactive","interactive":{"x":[1]}}`,
		`{"id":"m","timestamp":"2025-03-27 22:00:00","sender":{"phone":"+62"},"content":{"text":"a"}}`,
		`{"id":7}`, `{}`, `[]`, `null`, `{"id":"m","timestamp":"x"}`,
		`{"id":"m","id":"n","timestamp":null,"created_at":"2025-03-27T15:00:00Z","reply_to":{"id":"r"},"reply_to":"s"}`,
		`{"\u0069d":"m\u00e9\n","timestamp":"2025-03-27T15:00:00Z","content":"x","sender":[1],"is_template":"YES","ID":"x"}`,
		`{"id":"m","timestamp":"2025-03-27T15:00:00Z","additional_data":{"reply_to":5,"filename":"a\"b"},"reply-to":{"id":{"x":1}}}`,
		` {"id" : "m" , "timestamp" : 1.5e9 , "delivered_at" : "" , "read_at" : "bad", "contact":{"phone_number":6281}, "sent_by_type":"agent"} `,
	} {
		f.Add([]byte(s))
	}
	jakarta, _ := time.LoadLocation("Asia/Jakarta")
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := DecodeMessage(raw, jakarta)
		want, wantErr := decodeMessageReference(raw, jakarta)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("DecodeMessage(%q) err = %v, the reference %v", raw, gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DecodeMessage(%q) (-reference +new):\n%s", raw, diff)
		}
	})
}
