package cekatsim

import (
	"encoding/hex"
	"strings"
)

// Message ids encode (conversation index, position) through a keyed 64-bit
// permutation, so they look random (and are not ordered by time) while the
// simulator can map an id back to its message without an index.
const (
	posBits  = 40
	convBits = 64 - posBits
	posMask  = 1<<posBits - 1
)

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash3 is the deterministic source of every generated value.
func (s *Server) hash3(a, b int, salt uint64) uint64 {
	x := mix(s.seed ^ uint64(a))
	x = mix(x ^ uint64(b)*0xd1b54a32d192ed03)
	return mix(x ^ salt*0x8cb92ba72f3d8dd7)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func (s *Server) round(i int, r uint32) uint32 {
	return uint32(mix(uint64(r) ^ s.feistel[i]))
}

func (s *Server) permute(v uint64) uint64 {
	l, r := uint32(v>>32), uint32(v)
	for i := range s.feistel {
		l, r = r, l^s.round(i, r)
	}
	return uint64(l)<<32 | uint64(r)
}

func (s *Server) unpermute(v uint64) uint64 {
	l, r := uint32(v>>32), uint32(v)
	for i := len(s.feistel) - 1; i >= 0; i-- {
		l, r = r^s.round(i, l), l
	}
	return uint64(l)<<32 | uint64(r)
}

// messageID renders the id of message pos of conversation ci in the server's
// shape, made odd under Options.OddIDs.
func (s *Server) messageID(ci, pos int) string {
	id := s.plainID(ci, pos)
	if s.opts.OddIDs {
		id = oddify(id, s.oddAt(oddMsgDocAt), s.hash3(ci, pos, saltOddID))
	}
	return id
}

func (s *Server) plainID(ci, pos int) string {
	c := s.permute(uint64(ci)<<posBits | uint64(pos))
	if s.opts.Shape == ShapeReal {
		return s.cipherUUID(c)
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(c >> (56 - 8*i))
	}
	return "msg_" + hex.EncodeToString(b[:])
}

// cipherUUID lays 64 cipher bits and 58 check bits into a version 4 UUID.
func (s *Server) cipherUUID(c uint64) string {
	k := mix(c ^ s.seed ^ 0x5eed)
	var b [16]byte
	for i := 0; i < 6; i++ {
		b[i] = byte(c >> (56 - 8*i))
	}
	b[7] = byte(c >> 8)
	b[9] = byte(c)
	b[6] = 0x40 | byte(k&0x0f)
	b[8] = 0x80 | byte(k>>4)&0x3f
	for i := 10; i < 16; i++ {
		b[i] = byte(k >> (10 + 8*(i-10)))
	}
	return formatUUID(b)
}

// decodeMessageID maps an id back to (conversation index, position). It only
// checks the encoding, not that the message exists. An odd id must match
// exactly: the same id escaped or decoded once too often is unknown.
func (s *Server) decodeMessageID(id string) (ci, pos int, ok bool) {
	if !s.opts.OddIDs {
		return s.decodePlainID(id)
	}
	plain, ok := s.plainMessageID(id)
	if !ok {
		return 0, 0, false
	}
	if ci, pos, ok = s.decodePlainID(plain); !ok || s.messageID(ci, pos) != id {
		return 0, 0, false
	}
	return ci, pos, true
}

func (s *Server) decodePlainID(id string) (ci, pos int, ok bool) {
	var c uint64
	if s.opts.Shape == ShapeReal {
		b, ok := parseUUID(id)
		if !ok {
			return 0, 0, false
		}
		for i := 0; i < 6; i++ {
			c |= uint64(b[i]) << (56 - 8*i)
		}
		c |= uint64(b[7])<<8 | uint64(b[9])
		if s.cipherUUID(c) != id {
			return 0, 0, false
		}
	} else {
		h, found := strings.CutPrefix(id, "msg_")
		if !found || len(h) != 16 || strings.ToLower(h) != h {
			return 0, 0, false
		}
		raw, err := hex.DecodeString(h)
		if err != nil {
			return 0, 0, false
		}
		for _, x := range raw {
			c = c<<8 | uint64(x)
		}
	}
	v := s.unpermute(c)
	return int(v >> posBits), int(v & posMask), true
}

func formatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

func parseUUID(s string) (b [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if strings.ToLower(h) != h {
		return b, false
	}
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return b, false
	}
	return b, true
}

// hashUUID makes a version 4 UUID from two hashes.
func hashUUID(h1, h2 uint64) string {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(h1 >> (56 - 8*i))
		b[8+i] = byte(h2 >> (56 - 8*i))
	}
	b[6] = 0x40 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	return formatUUID(b)
}

// hexN renders the low n (at most 16) nibbles of h.
func hexN(h uint64, n int) string {
	const digits = "0123456789abcdef"
	out := make([]byte, n)
	for i := range out {
		out[i] = digits[h&15]
		h >>= 4
	}
	return string(out)
}
