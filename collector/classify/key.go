package classify

import "github.com/nfdrop/nfdrop_exporter/collector/packet"

// Key packs every label of nfdrop_packets_total except group into 48 bits, so
// a packet's series is found and counted without building strings. Bit 63
// marks a used key, so that 0 can mean an empty slot.
type Key uint64

// KeyUsed is set in every key KeyOf returns.
const KeyUsed Key = 1 << 63

// KeyOf packs the labels of a series; the prefix index is added by WithPrefix.
func KeyOf(f packet.Family, proto packet.Proto, port uint8, side Side, class Class, hasFlags bool, flags uint8) Key {
	k := KeyUsed | Key(f)<<32 | Key(proto)<<24 | Key(port)<<16 | Key(side)<<12 | Key(class)<<8 | Key(flags)
	if hasFlags {
		k |= 1 << 11
	}
	return k
}

// OverflowKey is the series a packet is counted in when a group's counter
// table is full: only its class is kept, every other label reads "other" or
// empty, and its prefix is the overflow value.
func OverflowKey(class Class) Key {
	return KeyOf(packet.FamilyOther, packet.ProtoOther, 0, SideNone, class, false, 0).WithPrefix(OtherPrefixIndex)
}

// WithPrefix returns k with the prefix table index of the packet's prefix.
func (k Key) WithPrefix(prefix uint8) Key { return k | Key(prefix)<<40 }

// Prefix returns the prefix table index.
func (k Key) Prefix() uint8 { return uint8(k >> 40) }

// Class returns the class.
func (k Key) Class() Class { return Class(k >> 8 & 0x7) }

// Labels unpacks the key; ports must be the vocabulary the key was made with.
func (k Key) Labels(ports *Ports) Labels {
	return Labels{
		Family:    packet.Family(k >> 32 & 0xff),
		Proto:     packet.Proto(k >> 24 & 0xff),
		PortIndex: uint8(k >> 16),
		Side:      Side(k >> 12 & 0x7),
		Class:     Class(k >> 8 & 0x7),
		HasFlags:  k&(1<<11) != 0,
		Flags:     uint8(k),
		ports:     ports,
	}
}
