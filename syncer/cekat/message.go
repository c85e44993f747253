package cekat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message is one WhatsApp message in the form the archive keeps, whichever
// shape the API answered in: the documented nested shape (content, sender)
// or the flat shape real deployments return (message, sent_by_*). Raw holds
// the message's JSON exactly as received, so nothing the model does not name
// (unknown types, unknown fields) is lost.
type Message struct {
	ID             string
	ConversationID string
	Direction      string // inbound | outbound | "" when the answer does not say
	Type           string // text, image, ... or whatever the API sent
	Status         string // sent | delivered | read | failed | ""
	Text           string
	MediaURL       string
	Caption        string
	Filename       string
	SenderName     string
	SenderPhone    string
	SenderID       string
	SenderType     string // agent | user | system (flat shape) or ""
	RecipientPhone string
	ReplyTo        string
	IsTemplate     bool
	Timestamp      time.Time
	DeliveredAt    *time.Time
	ReadAt         *time.Time
	UpdatedAt      *time.Time
	// Warnings lists optional fields that were present but unusable (an odd
	// delivered_at, say). The message is still good; the raw JSON keeps the
	// original value.
	Warnings []string
	Raw      json.RawMessage
}

// DecodeError says why a record could not become a Message. The record is
// kept so the caller can quarantine it.
type DecodeError struct {
	ID  string // the record's id when it had a usable one
	Raw json.RawMessage
	Err error
	// Index is the record's position in the list answer's data array, so a
	// caller can tell which side of a cursor message it was on.
	Index int
}

func (e *DecodeError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("decode message %s: %v", e.ID, e.Err)
	}
	return fmt.Sprintf("decode message: %v", e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeMessage turns one message object of either shape into a Message.
// Only an id and a time stamp are required; every other field is optional
// and tolerated in any JSON type that carries its meaning (numbers as ids,
// "true" as a boolean). Zone-less time stamps are read in loc.
func DecodeMessage(raw json.RawMessage, loc *time.Location) (Message, error) {
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
		m.Direction = directionOf(m.SenderType, sender)
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

	m.DeliveredAt = m.optionalTime(obj, "delivered_at", loc)
	m.ReadAt = m.optionalTime(obj, "read_at", loc)
	m.UpdatedAt = m.optionalTime(obj, "updated_at", loc)
	return m, nil
}

// mediaTypes are the types whose flat-shape `message` is a caption.
var mediaTypes = map[string]bool{"image": true, "video": true, "document": true, "audio": true, "sticker": true}

func (m *Message) optionalTime(obj map[string]json.RawMessage, key string, loc *time.Location) *time.Time {
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

func directionOf(senderType string, sender fields) string {
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

// fields reads loosely typed JSON values: the API is not consistent about
// strings versus numbers, and a field of an unexpected type must not cost the
// whole message.
type fields map[string]json.RawMessage

func (f fields) has(key string) bool {
	raw, ok := f[key]
	return ok && !isNull(raw)
}

func (f fields) str(key string) string {
	raw, ok := f[key]
	if !ok || len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw)
	case 't', 'f':
		if string(raw) == "true" || string(raw) == "false" {
			return string(raw)
		}
	}
	return ""
}

func (f fields) boolean(key string) bool {
	switch strings.ToLower(f.str(key)) {
	case "true", "1", "yes":
		return true
	}
	return false
}

func (f fields) object(key string) fields {
	raw, ok := f[key]
	if !ok || len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	return obj
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// unquoteID reads an id that may be a JSON string or number.
func unquoteID(raw json.RawMessage) string {
	return fields{"v": raw}.str("v")
}
