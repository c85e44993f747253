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
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		// Not an object: encoding/json says best what it is instead.
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return Message{}, &DecodeError{Raw: append(json.RawMessage(nil), raw...), Err: fmt.Errorf("not a JSON object: %w", err)}
		}
		return Message{}, &DecodeError{Raw: append(json.RawMessage(nil), raw...), Err: errors.New("not a JSON object: null")}
	}
	return decodeMessage(append(json.RawMessage(nil), raw...), loc)
}

// wireMessage is a message object as sent, either shape: the raw value of
// each member the archive reads (nil when absent), the last one of a
// repeated key. Nested objects are read into their own typed parts.
type wireMessage struct {
	id, timestamp, createdAt, conversationID, typ, mediaType, status  []byte
	text, caption, message, mediaURL, fileURL, filename, direction    []byte
	sentByName, sentBy, sentByType, isTemplate                        []byte
	replyTo, replyToDash, replyToMessageID                            []byte
	deliveredAt, readAt, updatedAt                                    []byte
	content, sender, recipient, contact, extra, replyToObj, replyDObj wireParts
}

// wireParts is what the archive reads of a nested object (content, sender,
// recipient, contact, additional_data, reply_to): one struct for all, since
// they share names.
type wireParts struct {
	text, caption, url, filename, name, userID, typ, phone, phoneNumber, replyTo, id []byte
}

func (p *wireParts) read(obj []byte) {
	*p = wireParts{}
	eachMember(obj, func(key, val []byte) {
		switch string(key) {
		case "text":
			p.text = val
		case "caption":
			p.caption = val
		case "url":
			p.url = val
		case "filename":
			p.filename = val
		case "name":
			p.name = val
		case "user_id":
			p.userID = val
		case "type":
			p.typ = val
		case "phone":
			p.phone = val
		case "phone_number":
			p.phoneNumber = val
		case "reply_to":
			p.replyTo = val
		case "id":
			p.id = val
		}
	})
}

func (w *wireMessage) read(obj []byte) {
	eachMember(obj, func(key, val []byte) {
		switch string(key) {
		case "id":
			w.id = val
		case "timestamp":
			w.timestamp = val
		case "created_at":
			w.createdAt = val
		case "conversation_id":
			w.conversationID = val
		case "type":
			w.typ = val
		case "media_type":
			w.mediaType = val
		case "status":
			w.status = val
		case "text":
			w.text = val
		case "caption":
			w.caption = val
		case "message":
			w.message = val
		case "media_url":
			w.mediaURL = val
		case "file_url":
			w.fileURL = val
		case "filename":
			w.filename = val
		case "direction":
			w.direction = val
		case "sent_by_name":
			w.sentByName = val
		case "sent_by":
			w.sentBy = val
		case "sent_by_type":
			w.sentByType = val
		case "is_template":
			w.isTemplate = val
		case "reply_to":
			w.replyTo = val
			w.replyToObj.read(val)
		case "reply-to":
			w.replyToDash = val
			w.replyDObj.read(val)
		case "reply_to_message_id":
			w.replyToMessageID = val
		case "delivered_at":
			w.deliveredAt = val
		case "read_at":
			w.readAt = val
		case "updated_at":
			w.updatedAt = val
		case "content":
			w.content.read(val)
		case "sender":
			w.sender.read(val)
		case "recipient":
			w.recipient.read(val)
		case "contact":
			w.contact.read(val)
		case "additional_data":
			w.extra.read(val)
		}
	})
}

// decodeMessage decodes raw, a valid JSON object, in one pass. The Message
// keeps raw itself as its Raw: the caller hands over bytes nothing else
// writes to (a response body, or a copy).
func decodeMessage(raw json.RawMessage, loc *time.Location) (Message, error) {
	var w wireMessage
	w.read(raw)
	m := Message{Raw: raw}

	m.ID = scalar(w.id)
	if m.ID == "" {
		return Message{}, &DecodeError{Raw: m.Raw, Err: errors.New("missing id")}
	}
	tsKey, tsRaw := "timestamp", w.timestamp
	if isNull(tsRaw) {
		tsKey, tsRaw = "created_at", w.createdAt
	}
	if isNull(tsRaw) {
		return Message{}, &DecodeError{ID: m.ID, Raw: m.Raw, Err: errors.New("missing timestamp and created_at")}
	}
	ts, err := parseTimeJSON(tsRaw, loc)
	if err != nil {
		return Message{}, &DecodeError{ID: m.ID, Raw: m.Raw, Err: fmt.Errorf("%s: %w", tsKey, err)}
	}
	m.Timestamp = ts

	m.ConversationID = scalar(w.conversationID)
	m.Type = firstNonEmpty(scalar(w.typ), scalar(w.mediaType))
	m.Status = scalar(w.status)
	m.Text = firstNonEmpty(scalar(w.content.text), scalar(w.text))
	m.Caption = firstNonEmpty(scalar(w.content.caption), scalar(w.caption))
	// The flat shape has one `message` field: the text of a text message,
	// the caption of a media message.
	if msg := scalar(w.message); msg != "" {
		if mediaTypes[strings.ToLower(m.Type)] {
			m.Caption = firstNonEmpty(m.Caption, msg)
		} else {
			m.Text = firstNonEmpty(m.Text, msg)
		}
	}
	m.MediaURL = firstNonEmpty(scalar(w.content.url), scalar(w.mediaURL), scalar(w.fileURL))
	m.Filename = firstNonEmpty(scalar(w.content.filename), scalar(w.filename), scalar(w.extra.filename))
	m.SenderName = firstNonEmpty(scalar(w.sender.name), scalar(w.sentByName))
	m.SenderID = firstNonEmpty(scalar(w.sender.userID), scalar(w.sentBy))
	m.SenderType = firstNonEmpty(scalar(w.sender.typ), scalar(w.sentByType))
	m.SenderPhone = scalar(w.sender.phone)
	m.RecipientPhone = scalar(w.recipient.phone)
	switch strings.ToLower(scalar(w.isTemplate)) {
	case "true", "1", "yes":
		m.IsTemplate = true
	}
	m.ReplyTo = firstNonEmpty(scalar(w.replyTo), scalar(w.replyToDash), scalar(w.replyToMessageID),
		scalar(w.replyToObj.id), scalar(w.replyDObj.id), scalar(w.extra.replyTo))

	m.Direction = strings.ToLower(scalar(w.direction))
	if m.Direction == "" {
		m.Direction = directionOf(m.SenderType, scalar(w.sender.userID), m.SenderPhone)
	}
	// In the flat shape the customer appears as contact: the sender of an
	// inbound message, the recipient of an outbound one.
	if phone := firstNonEmpty(scalar(w.contact.phone), scalar(w.contact.phoneNumber)); phone != "" {
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

	m.DeliveredAt = m.optionalTime(w.deliveredAt, "delivered_at", loc)
	m.ReadAt = m.optionalTime(w.readAt, "read_at", loc)
	m.UpdatedAt = m.optionalTime(w.updatedAt, "updated_at", loc)
	return m, nil
}

// mediaTypes are the types whose flat-shape `message` is a caption.
var mediaTypes = map[string]bool{"image": true, "video": true, "document": true, "audio": true, "sticker": true}

func (m *Message) optionalTime(raw []byte, key string, loc *time.Location) *time.Time {
	if isNull(raw) || string(raw) == `""` {
		return nil
	}
	t, err := parseTimeJSON(raw, loc)
	if err != nil {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%s: %v", key, err))
		return nil
	}
	return &t
}

func directionOf(senderType, senderUserID, senderPhone string) string {
	switch strings.ToLower(senderType) {
	case "user", "customer", "contact":
		return "inbound"
	case "agent", "system", "bot", "ai":
		return "outbound"
	}
	// Documented shape: customers carry a phone, agents and bots a user_id.
	switch {
	case senderUserID != "":
		return "outbound"
	case senderPhone != "":
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
