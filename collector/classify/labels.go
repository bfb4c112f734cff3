package classify

// Label names of the exporter's metrics.
const (
	LabelGroup  = "group"
	LabelPrefix = "prefix"
	LabelFamily = "family"
	LabelProto  = "proto"
	LabelPort   = "port"
	LabelSide   = "side"
	LabelFlags  = "flags"
	LabelClass  = "class"
)

// PacketLabels are the label names of nfdrop_packets_total, in the order
// Labels.Values returns their values.
var PacketLabels = []string{LabelGroup, LabelPrefix, LabelFamily, LabelProto, LabelPort, LabelSide, LabelFlags, LabelClass}

// Values returns the label values of a series of nfdrop_packets_total, in
// the order of PacketLabels.
func (l Labels) Values(group, prefix string) []string {
	return []string{group, prefix, l.FamilyLabel(), l.ProtoLabel(), l.PortLabel(), l.SideLabel(), l.FlagsLabel(), l.ClassLabel()}
}
