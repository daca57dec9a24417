package packet

// Decode decodes the body of any packet into a new value of its concrete
// type (*Connect, *Publish, *Ack, ...). It allocates, so it is meant for
// tools, tests and fuzzing; a broker decodes into reused values with the
// per-type Decode methods. For CONNECT, v is ignored: the packet carries
// its own version. A *Publish aliases body.
func Decode(fh FixedHeader, body []byte, v Version) (Packet, error) {
	var (
		p   Packet
		err error
	)
	switch fh.Type {
	case CONNECT:
		c := new(Connect)
		p, err = c, c.Decode(fh, body)
	case CONNACK:
		c := new(Connack)
		p, err = c, c.Decode(fh, body, v)
	case PUBLISH:
		c := new(Publish)
		p, err = c, c.Decode(fh, body, v)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		c := new(Ack)
		p, err = c, c.Decode(fh, body, v)
	case SUBSCRIBE:
		c := new(Subscribe)
		p, err = c, c.Decode(fh, body, v)
	case SUBACK:
		c := new(Suback)
		p, err = c, c.Decode(fh, body, v)
	case UNSUBSCRIBE:
		c := new(Unsubscribe)
		p, err = c, c.Decode(fh, body, v)
	case UNSUBACK:
		c := new(Unsuback)
		p, err = c, c.Decode(fh, body, v)
	case PINGREQ:
		c := new(Pingreq)
		p, err = c, c.Decode(fh, body, v)
	case PINGRESP:
		c := new(Pingresp)
		p, err = c, c.Decode(fh, body, v)
	case DISCONNECT:
		c := new(Disconnect)
		p, err = c, c.Decode(fh, body, v)
	case AUTH:
		c := new(Auth)
		p, err = c, c.Decode(fh, body, v)
	default:
		return nil, Errorf(MalformedPacket, "packet type %d is reserved", byte(fh.Type))
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}
