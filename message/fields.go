package message

import "time"

// Exported forms of the field parsers Parse uses, for protocols that
// present any header field in a parsed form (the HTTP API's
// header:{name}:asAddresses, :asDate, :asMessageIds, RFC 8621 §4.1.2).

// ParseAddressList parses an address-list field value (RFC 5322 §3.4)
// as Parse does the envelope's: leniently, display names decoded.
func ParseAddressList(value string) []Address { return parseAddressList(value) }

// ParseDate parses a date-time field value (RFC 5322 §3.3) as Parse
// does Date:; the zero time when it is not one.
func ParseDate(value string) time.Time { return parseDate(value) }

// ParseMessageIDs parses a list of msg-ids (RFC 5322 §3.6.4), returning
// them without angle brackets; nil when there is none.
func ParseMessageIDs(value string) []string { return msgIDs(value) }
