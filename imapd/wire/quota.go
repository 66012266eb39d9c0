package wire

// GetQuota is GETQUOTA (RFC 9208 §4.2.1): a quota root.
type GetQuota struct {
	Root string
}

// GetQuotaRoot is GETQUOTAROOT (RFC 9208 §4.2.2): the mailbox whose
// quota roots the client asks for.
type GetQuotaRoot struct {
	Mailbox string
}

// SetQuota is SETQUOTA (RFC 9208 §4.2.3).
type SetQuota struct {
	Root   string
	Limits []QuotaLimit
}

// QuotaLimit is one setquota_resource: a resource name in upper case
// and its limit.
type QuotaLimit struct {
	Resource string
	Limit    uint64
}

// quotaArgs reads the arguments of GETQUOTA, GETQUOTAROOT and SETQUOTA
// (RFC 9208 §7 getquota, getquotaroot, setquota).
func (p *Parser) quotaArgs(name string) (any, error) {
	switch name {
	case "GETQUOTA":
		var g GetQuota
		return &g, p.spAString(&g.Root)
	case "GETQUOTAROOT":
		var g GetQuotaRoot
		return &g, p.spMailbox(&g.Mailbox)
	}
	var s SetQuota
	if err := p.spAString(&s.Root); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	// setquota_list = "(" [setquota_resource *(SP setquota_resource)] ")"
	// setquota_resource = res-name SP res-limit (number64).
	err := p.list(true, func() error {
		res, err := p.atom()
		if err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		n, err := p.number(1<<63 - 1)
		if err != nil {
			return err
		}
		s.Limits = append(s.Limits, QuotaLimit{Resource: toUpper(res), Limit: n})
		return nil
	})
	return &s, err
}
