package cekatsim

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Hash salts: one per generated property, so that properties are independent.
const (
	saltGap uint64 = iota + 1
	saltKind
	saltType
	saltText
	saltTextLen
	saltURL
	saltCaption
	saltFilename
	saltReply
	saltReplyTarget
	saltTemplate
	saltAgent
	saltFmtTs
	saltFmtDel
	saltFmtRead
	saltFracTs
	saltFracDel
	saltFracRead
	saltDelay
	saltDelayAmount
	saltOutcome
	saltReadDelay
	_ // was saltInboundStatus, the constant status inbound messages had; kept so later salts keep their values
	saltMalformed
	saltMalformedKind
	saltExtra
	saltWA
	saltLocation
	saltButtons
	saltLiveCount
	saltNanoDigits
	saltInboundRead      // whether an inbound message is ever read
	saltInboundReadDelay // how long after it came in
)

const (
	kindUser = iota
	kindAgent
	kindSystem
	kindAPI
)

const (
	malformedNone = iota
	malformedNoID
	malformedTimestamp
	malformedNotObject
)

var malformedReasons = [...]string{"", "missing_id", "bad_timestamp", "not_object"}

// badTimestamps are served instead of a time stamp for bad_timestamp messages:
// no format parses them.
var badTimestamps = [...]string{"27/03/2025 15.00", "not-a-date", "2025-13-45T25:61:00Z", "", "kemarin", "0000-00-00 00:00:00"}

// badItems are served instead of a message object for not_object messages.
var badItems = [...]string{`"[message unavailable]"`, `null`, `42`, `["corrupt"]`, `true`}

type inbox struct {
	docID, realID string
	name, phone   string
}

type agent struct {
	docID, realID string
	name          string
}

var (
	firstNames = []string{"Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Joko", "Wulan", "Eko", "Ayu", "Fajar", "Nur", "Rizky", "Intan", "Hendra", "Maya", "Yusuf", "Lestari", "Dimas", "Sri", "Bayu", "Ratna", "Teguh", "Citra", "O'Neil", "Zoë", "李"}
	lastNames  = []string{"Santoso", "Wijaya", "Pratama", "Saputra", "Hidayat", "Kusuma", "Nugroho", "Lestari", "Siregar", "Simanjuntak", "Halim", "Gunawan", "Tan", "Sembiring", "Purba", ""}
	words      = []string{"halo", "kak", "pesanan", "saya", "sudah", "dikirim", "belum", "sampai", "mohon", "bantuannya", "terima", "kasih", "order", "nomor", "invoice", "pembayaran", "transfer", "refund", "ukuran", "warna", "stok", "tersedia", "besok", "hari", "ini", "alamat", "pengiriman", "kurir", "resi", "cek", "baik", "siap", "ditunggu", "promo", "diskon", "gratis", "ongkir", "produk", "rusak", "tukar", "please", "help", "my", "order", "is", "late", "thanks", "ok", "yes", "no", "price", "delivery"}
	extras     = []string{" 🙏", " 😊", "!", "?", " 👍🏽", "...", " #INV-2025", ` "urgent"`, "\nterima kasih", " <b>&</b>", " \\o/", " 🇮🇩"}
	buttonSets = [][]string{{"Ya", "Tidak"}, {"Cek pesanan", "Bicara dengan agen", "Selesai"}, {"Bayar sekarang", "Nanti"}}
	places     = []string{"Kantor Pusat", "Gudang Cakung", "Rumah", "Toko Kemang", "Stasiun Sudirman"}
	docNames   = []string{"invoice.pdf", "Faktur Maret 2025.pdf", "katalog_produk.xlsx", "surat-jalan (1).pdf", "bukti transfer.jpg.pdf"}
)

// convo is one conversation. Fields other than extras, deleted and lastSec are
// immutable after creation; those three are guarded by Server.mu.
type convo struct {
	idx       int
	id        string
	contactID string
	custName  string
	phone     string
	inbox     *inbox
	agent     int

	gen      int     // generated (historical) messages
	startSec int64   // unix seconds of message 0
	blocks   []int64 // offset in seconds of message 64*b from message 0

	extras  []extra // appended messages (live traffic and sends), positions gen..
	lastSec int64   // smallest whole second no earlier than the last message
	deleted bool

	meta convMeta // the conversation list's view of it (conversations.go)
}

// extra is an appended message: generated live traffic (sent == nil) or a
// message sent through the API.
type extra struct {
	sec  int64
	sent *sentMsg
	seq  uint64 // Server.seq when appended (conversations.go)
}

type sentMsg struct {
	typ, text, url, caption, filename, replyTo string
}

type button struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name"`
	Address   string  `json:"address"`
}

// msg is a fully materialized message at a given simulated time.
type msg struct {
	c          *convo
	pos        int
	id         string
	kind       int
	agent      *agent
	typ        string
	text       string
	url        string
	caption    string
	filename   string
	loc        *location
	buttons    []button
	reply      *button // a user's answer to buttons
	replyTo    string
	isTemplate bool

	ts                      time.Time
	tsFmt, delFmt, readFmt  tfmt
	status                  string
	deliveredAt, readAt     *time.Time
	failedAt                *time.Time
	malformed               int
	badTS                   string
	badItem                 string
	waID                    string
	extraMeta               bool
	actionType, actionAgent string
}

func (m *msg) inbound() bool { return m.kind == kindUser }

// heavyCount draws the heavy-tailed message count of conversation ci: a few
// empty conversations, most small, a Pareto tail reaching thousands.
func (s *Server) heavyCount(ci, mean int) int {
	if mean <= 0 {
		return 0
	}
	h := s.hash3(ci, -2, 1)
	if h%100 < 6 {
		return 0
	}
	u := 1 - unit(mix(h))                         // (0, 1]
	x := float64(mean) / 2.9 / math.Pow(u, 1/1.5) // Pareto, alpha 1.5
	limit := 200 * mean
	n := int(math.Ceil(x))
	if n > limit {
		n = limit
	}
	if n < 1 {
		n = 1
	}
	return n
}

// gap is the number of seconds between message j-1 and message j (j >= 1).
// Many are 0 (several messages in the same second); long conversations are
// compressed so that their span stays within months.
func (s *Server) gap(c *convo, j int) int64 {
	h := s.hash3(c.idx, j, saltGap)
	u, r := h%100, int64(h>>8)
	var g int64
	switch {
	case u < 35:
		return 0
	case u < 65:
		g = 1 + r%59
	case u < 85:
		g = 60 + r%1740
	case u < 97:
		g = 1800 + r%(12*3600-1800)
	default:
		g = 86400 + r%(4*86400)
	}
	if c.gen > 1000 {
		g = g * 1000 / int64(c.gen)
	}
	return g
}

// offset is the number of seconds from message 0 to generated message pos.
func (s *Server) offset(c *convo, pos int) int64 {
	b := pos / 64
	off := c.blocks[b]
	for j := b*64 + 1; j <= pos; j++ {
		off += s.gap(c, j)
	}
	return off
}

// genTime is the time stamp of generated message pos, whose second is
// startSec+off. Only the last message of a second gets a fraction (so that
// time stamps stay non-decreasing), and only when its served format keeps one.
func (s *Server) genTime(c *convo, pos int, off int64) time.Time {
	t := time.Unix(c.startSec+off, 0).UTC()
	if s.opts.Shape != ShapeReal {
		return t
	}
	if pos != c.gen-1 && s.gap(c, pos+1) == 0 {
		return t
	}
	f := s.format(c, pos, saltFmtTs)
	k := f.digits(s.hash3(c.idx, pos, saltNanoDigits))
	return t.Add(fraction(s.hash3(c.idx, pos, saltFracTs), k))
}

func (s *Server) format(c *convo, pos int, salt uint64) tfmt {
	if s.opts.Shape != ShapeReal {
		return fmtZ
	}
	return tfmt(s.hash3(c.idx, pos, salt) % uint64(numFormats))
}

func (s *Server) newInboxes() {
	names := []string{"CS Jakarta", "Toko Online", "Layanan Pelanggan"}
	for i, name := range names {
		s.inboxes = append(s.inboxes, &inbox{
			docID:  "inbox_" + hexN(s.hash3(-10, i, 1), 6),
			realID: hashUUID(s.hash3(-10, i, 2), s.hash3(-10, i, 3)),
			name:   name,
			phone:  fmt.Sprintf("+6221%08d", s.hash3(-10, i, 4)%100000000),
		})
	}
	humans := []string{"Rudi (CS)", "Anisa", "Support Agent", "Dian Permata", "Kevin", "Tari"}
	for i, name := range humans {
		s.agents = append(s.agents, &agent{
			docID:  fmt.Sprintf("agent_%03d", 100+s.hash3(-11, i, 1)%900),
			realID: hashUUID(s.hash3(-11, i, 2), s.hash3(-11, i, 3)),
			name:   name,
		})
	}
	s.bot = &agent{docID: "bot_001", realID: hashUUID(s.hash3(-12, 0, 2), s.hash3(-12, 0, 3)), name: "Cekat AI"}
	s.system = &agent{docID: "system", name: "System"}
	s.apiAgent = &agent{docID: "api", realID: hashUUID(s.hash3(-13, 0, 2), s.hash3(-13, 0, 3)), name: "API"}
}

// newConvo creates conversation ci with count generated messages. Callers
// hold s.mu (or are in New) and register the result.
func (s *Server) newConvo(ci, count int, phone string, ib *inbox) *convo {
	h := func(salt uint64) uint64 { return s.hash3(ci, -1, salt) }
	c := &convo{idx: ci, gen: count}
	for attempt := uint64(0); ; attempt++ {
		var id string
		if s.opts.Shape == ShapeReal {
			id = hashUUID(h(100+attempt), h(200+attempt))
		} else {
			id = "conv_" + hexN(h(100+attempt), 12)
		}
		id = s.convID(ci, id)
		if _, dup := s.byID[id]; !dup {
			c.id = id
			break
		}
	}
	c.contactID = hashUUID(h(3), h(4))
	c.custName = strings.TrimSpace(firstNames[h(5)%uint64(len(firstNames))] + " " + lastNames[h(6)%uint64(len(lastNames))])
	c.phone = phone
	for attempt := uint64(0); c.phone == ""; attempt++ {
		p := fmt.Sprintf("+628%d%09d", 1+h(300+attempt)%9, h(400+attempt)%1000000000)
		if _, dup := s.byPhone[p]; !dup {
			c.phone = p
		}
	}
	c.inbox = ib
	if ib == nil {
		c.inbox = s.inboxes[h(7)%uint64(len(s.inboxes))]
	}
	c.agent = int(h(8) % uint64(len(s.agents)))

	startSec := s.opts.Start.Unix()
	var endOff int64
	switch u := h(9) % 100; {
	case u < 20:
		endOff = 60 + int64(h(10)%540)
	case u < 50:
		endOff = 600 + int64(h(10)%(86400-600))
	default:
		endOff = 86400 + int64(h(10)%(59*86400))
	}
	if count > 0 {
		c.blocks = make([]int64, (count-1)/64+1)
		var off int64
		for j := 1; j < count; j++ {
			off += s.gap(c, j)
			if j%64 == 0 {
				c.blocks[j/64] = off
			}
		}
		c.startSec = startSec - endOff - off
		c.lastSec = startSec - endOff + 1
	} else {
		c.startSec = startSec
		c.lastSec = startSec - endOff
	}
	return c
}

func pick[T any](h uint64, xs []T) T { return xs[h%uint64(len(xs))] }

func (s *Server) sentence(ci, pos int, salt uint64) string {
	h := s.hash3(ci, pos, salt)
	n := 2 + int(h%13)
	var b strings.Builder
	for i := 0; i < n; i++ {
		w := pick(mix(h+uint64(i)), words)
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	if x := mix(h ^ 0x77); x%3 == 0 {
		b.WriteString(pick(x>>8, extras))
	}
	return b.String()
}

// message materializes message pos of c. ts is its time stamp (computed by
// the caller, which walks offsets efficiently); ex is the appended record for
// positions at or beyond c.gen.
func (s *Server) message(c *convo, pos int, ts time.Time, ex *extra, now time.Time) *msg {
	ci := c.idx
	h := func(salt uint64) uint64 { return s.hash3(ci, pos, salt) }
	m := &msg{c: c, pos: pos, id: s.messageID(ci, pos), ts: ts}
	m.tsFmt = s.format(c, pos, saltFmtTs)
	m.delFmt = s.format(c, pos, saltFmtDel)
	m.readFmt = s.format(c, pos, saltFmtRead)
	m.waID = "wamid.HBgM" + strings.ToUpper(hexN(h(saltWA), 16))
	m.extraMeta = h(saltExtra)%10 == 0

	if ex != nil && ex.sent != nil {
		sm := ex.sent
		m.kind, m.agent = kindAPI, s.apiAgent
		m.typ, m.text, m.url, m.caption, m.filename, m.replyTo = sm.typ, sm.text, sm.url, sm.caption, sm.filename, sm.replyTo
	} else {
		s.generateContent(m, h)
		if s.opts.MalformedRate > 0 && unit(h(saltMalformed)) < s.opts.MalformedRate {
			m.malformed = 1 + int(h(saltMalformedKind)%3)
			m.badTS = badTimestamps[h(saltMalformedKind)>>8%uint64(len(badTimestamps))]
			m.badItem = badItems[h(saltMalformedKind)>>16%uint64(len(badItems))]
		}
	}
	s.progress(m, h, now)
	return m
}

func (s *Server) generateContent(m *msg, h func(uint64) uint64) {
	c, pos := m.c, m.pos
	switch u := h(saltKind) % 100; {
	case pos == 0 || u < 50:
		m.kind = kindUser
	case u < 93:
		m.kind = kindAgent
		if h(saltAgent)%5 == 0 {
			m.agent = s.bot
		} else if h(saltAgent)%7 == 0 {
			m.agent = s.agents[h(saltAgent)>>8%uint64(len(s.agents))]
		} else {
			m.agent = s.agents[c.agent]
		}
	default:
		m.kind, m.agent = kindSystem, s.system
	}
	t := h(saltType) % 100
	switch m.kind {
	case kindUser:
		m.typ = pickType(t, []int{72, 80, 83, 87, 93, 97, 99}, []string{"text", "image", "video", "document", "audio", "sticker", "location", "interactive"})
	case kindAgent:
		m.typ = pickType(t, []int{74, 80, 82, 88, 90}, []string{"text", "image", "video", "document", "audio", "interactive"})
	default:
		m.typ = "text"
	}
	if e, ok := mediaExt[m.typ]; ok {
		m.url = fmt.Sprintf("https://media.cekat.ai/sim/%s/%s.%s", m.typ, hexN(h(saltURL), 16), e)
	}
	switch m.typ {
	case "text":
		if m.kind == kindSystem {
			other := s.agents[h(saltText)%uint64(len(s.agents))]
			if h(saltText)>>8%2 == 0 {
				m.text = "Conversation assigned to " + other.name
				m.actionType, m.actionAgent = "assign", other.realID
			} else {
				m.text = "Conversation resolved by " + other.name
				m.actionType, m.actionAgent = "resolve", other.realID
			}
		} else {
			m.text = s.sentence(c.idx, pos, saltText)
		}
		if m.kind == kindAgent && h(saltTemplate)%100 < 8 {
			m.isTemplate = true
		}
	case "image", "video":
		if h(saltCaption)%100 < 45 {
			m.caption = s.sentence(c.idx, pos, saltCaption)
		}
	case "document":
		m.filename = pick(h(saltFilename), docNames)
		if h(saltCaption)%100 < 30 {
			m.caption = s.sentence(c.idx, pos, saltCaption)
		}
	case "location":
		l := h(saltLocation)
		m.loc = &location{
			Latitude:  math.Round((-6.2+(unit(l)-0.5)*0.4)*1e6) / 1e6,
			Longitude: math.Round((106.8+(unit(mix(l))-0.5)*0.4)*1e6) / 1e6,
			Name:      pick(l>>3, places),
			Address:   fmt.Sprintf("Jl. Sudirman No. %d, Jakarta", 1+l%200),
		}
	case "interactive":
		set := pick(h(saltButtons), buttonSets)
		if m.kind == kindUser {
			i := int(h(saltButtons)>>8) % len(set)
			m.reply = &button{ID: fmt.Sprintf("btn_%d", i+1), Title: set[i]}
			m.text = set[i]
		} else {
			for i, title := range set {
				m.buttons = append(m.buttons, button{ID: fmt.Sprintf("btn_%d", i+1), Title: title})
			}
			m.text = s.sentence(c.idx, pos, saltText)
		}
	}
	if pos > 0 && m.kind != kindSystem && h(saltReply)%100 < 8 {
		back := 1 + int(h(saltReplyTarget)%uint64(min(pos, 20)))
		m.replyTo = s.messageID(c.idx, pos-back)
	}
}

var mediaExt = map[string]string{"image": "jpg", "video": "mp4", "document": "pdf", "audio": "ogg", "sticker": "webp"}

func pickType(u uint64, cum []int, types []string) string {
	for i, c := range cum {
		if int(u) < c {
			return types[i]
		}
	}
	return types[len(types)-1]
}

// Inbound statuses: the status an inbound message has until an agent reads it.
// The documented shape names it "received"; the flat shape, whose documented
// statuses are sent|delivered|read|failed, serves "delivered".
const (
	statusReceived   = "received"
	inboundNeverRead = 10 // percent of inbound messages no agent ever opens
)

// Read delays of inbound messages: log-uniform between these bounds.
const (
	inboundReadMin = 10 * time.Second
	inboundReadMax = 2 * 24 * time.Hour
)

// progress sets the status and status times of m as of the simulated time now.
// Outbound messages go sent -> delivered -> read (or failed, or stay sent);
// inbound ones go received (documented shape) or delivered (flat shape) ->
// read, or are never read. Everything derives from hashes of the message's
// position, so nothing is remembered per message.
func (s *Server) progress(m *msg, h func(uint64) uint64, now time.Time) {
	if m.inbound() {
		s.progressInbound(m, h, now)
		return
	}
	base := m.ts.Truncate(time.Second)
	var d1 int64
	switch u, r := h(saltDelay)%100, int64(h(saltDelayAmount)>>4); {
	case u < 80:
		d1 = 1 + r%30
	case u < 95:
		d1 = 60 + r%3540
	default:
		d1 = 3600 + r%(12*3600)
	}
	m.status = "sent"
	outcome := h(saltOutcome) % 100
	switch {
	case outcome < 3: // failed
		at := base.Add(time.Duration(d1) * time.Second)
		if !at.After(now) {
			m.status = "failed"
			m.failedAt = &at
		}
		return
	case outcome < 5: // never delivered
		return
	}
	del := base.Add(time.Duration(d1)*time.Second + fraction(h(saltFracDel), m.delFmt.digits(h(saltNanoDigits)>>8)))
	if del.After(now) {
		return
	}
	m.status, m.deliveredAt = "delivered", &del
	if outcome < 30 { // delivered, never read
		return
	}
	// read delay: log-uniform between a minute and three days
	r := h(saltReadDelay)
	secs := int64(math.Exp(math.Log(60) + unit(r)*(math.Log(3*86400)-math.Log(60))))
	read := base.Add(time.Duration(d1+1+secs)*time.Second + fraction(mix(r), m.readFmt.digits(h(saltNanoDigits)>>16)))
	if read.After(now) {
		return
	}
	m.status, m.readAt = "read", &read
}

// progressInbound: an inbound message arrives unread and is read when an agent
// opens it, 10 seconds to 2 days after it came in (log-uniform), unless it is
// one of the inboundNeverRead percent nobody opens. read_at keeps the precision
// of the format it is served in, like an outbound read_at.
func (s *Server) progressInbound(m *msg, h func(uint64) uint64, now time.Time) {
	m.status = statusReceived
	if s.opts.Shape == ShapeReal {
		m.status = "delivered"
	}
	if h(saltInboundRead)%100 < inboundNeverRead {
		return
	}
	r := h(saltInboundReadDelay)
	lo, hi := math.Log(inboundReadMin.Seconds()), math.Log(inboundReadMax.Seconds())
	secs := int64(math.Round(math.Exp(lo + unit(r)*(hi-lo))))
	// counted from the message's whole second, so that read_at has exactly the
	// precision of its format: 10 s to 2 days after that second
	read := m.ts.Truncate(time.Second).Add(time.Duration(secs)*time.Second + fraction(mix(r), m.readFmt.digits(h(saltNanoDigits)>>16)))
	if read.After(now) {
		return
	}
	m.status, m.readAt = "read", &read
}

// updatedAt is the time of the last change of m (creation or status) and the
// format it is served in.
func (m *msg) updatedAt() (time.Time, tfmt) {
	switch {
	case m.readAt != nil:
		return *m.readAt, m.readFmt
	case m.deliveredAt != nil:
		return *m.deliveredAt, m.delFmt
	case m.failedAt != nil:
		return *m.failedAt, m.delFmt
	}
	return m.ts, m.tsFmt
}
