package jmap

import (
	"maps"
	"slices"

	"pushmail/mailstore"
)

// The steps that every /set and /import method (RFC 8620 §5.3, RFC 8621
// §4.8) takes around its own work, and the body that every /changes
// (RFC 8620 §5.2) shares: one place, so that the methods cannot drift
// apart in the order of their checks or the shape of their answers.

// noState is the kind of a data type that has no state: push
// subscriptions (RFC 8620 §7.2.2 gives PushSubscription/set no
// ifInState, oldState or newState).
const noState mailstore.ChangeKind = 0

// stateOf is the state of one data type in st. Thread shares Email's:
// every Email is its own Thread.
func stateOf(st mailstore.AccountState, kind mailstore.ChangeKind) uint64 {
	if kind == mailstore.KindMailbox {
		return st.Mailbox
	}
	return st.Email
}

// setSpec is what a /set or /import method tells openSet about its
// arguments.
type setSpec struct {
	// kind is the data type whose state ifInState checks and the answer
	// reports; noState for one without (no accountId, no ifInState).
	kind mailstore.ChangeKind
	// args are the method's own arguments by name, each with the
	// pointer it is decoded into; any other argument is refused.
	args map[string]any
	// required are the arguments that must be present and not null.
	required []string
	// objects counts the objects the decoded arguments name, checked
	// against maxObjectsInSet; what names them in the error.
	objects func() int
	what    string
}

// crudSpec is the setSpec of a /set whose arguments are create, update
// and destroy (RFC 8620 §5.3), decoded into the pointers given; a
// method adds its own arguments to args.
func crudSpec[C, U any](kind mailstore.ChangeKind, create *map[string]C, update *map[string]U, destroy *[]string) setSpec {
	return setSpec{kind: kind, args: map[string]any{"create": create, "update": update, "destroy": destroy},
		objects: func() int { return len(*create) + len(*update) + len(*destroy) }, what: "objects"}
}

// setOp is one /set or /import call past openSet: the state its changes
// start from and each object's outcome so far, for the answer. Not safe
// for concurrent use (a call runs on one goroutine).
type setOp struct {
	s    *Server
	c    *call
	kind mailstore.ChangeKind
	old  uint64

	created, notCreated, updated, notUpdated, notDestroyed map[string]any
	destroyed                                              []string
}

// openSet takes the steps every /set and /import takes before it
// changes anything, in this order: an argument that is neither the
// method's nor (with a state) accountId or ifInState is
// invalidArguments (RFC 8620 §3.6.2); each argument is decoded, and a
// required one that is absent or null is invalidArguments; more
// objects than maxObjectsInSet is requestTooLarge (RFC 8620 §5.3); the
// account state is read, and an ifInState other than it is
// stateMismatch (RFC 8620 §5.3).
func (s *Server) openSet(c *call, spec setSpec) (*setOp, error) {
	known := slices.Collect(maps.Keys(spec.args))
	if spec.kind != noState {
		known = append(known, "accountId", "ifInState")
	}
	if err := c.known(known...); err != nil {
		return nil, err
	}
	for name, v := range spec.args {
		if err := c.arg(name, v); err != nil {
			return nil, err
		}
	}
	for _, name := range spec.required {
		if !c.has(name) {
			return nil, invalidArgs(name+" is required", name)
		}
	}
	if spec.objects() > s.limits.MaxObjectsInSet {
		return nil, &methodError{Type: "requestTooLarge", Description: "More " + spec.what + " than maxObjectsInSet"}
	}
	op := &setOp{s: s, c: c, kind: spec.kind,
		created: map[string]any{}, notCreated: map[string]any{}, updated: map[string]any{}, notUpdated: map[string]any{},
		destroyed: []string{}, notDestroyed: map[string]any{}}
	if spec.kind == noState {
		return op, nil
	}
	st, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	op.old = stateOf(st, spec.kind)
	if err := ifInState(c, op.old); err != nil {
		return nil, err
	}
	return op, nil
}

// ifInState checks /set's ifInState (RFC 8620 §5.3: stateMismatch).
func ifInState(c *call, current uint64) error {
	if !c.has("ifInState") {
		return nil
	}
	var want string
	if err := c.arg("ifInState", &want); err != nil {
		return err
	}
	if want != stateString(current) {
		return &methodError{Type: "stateMismatch", Description: "The state is " + stateString(current)}
	}
	return nil
}

// create records creation k as done with obj, whose object got id: RFC
// 8620 §5.3, later calls of the request may name it "#k".
func (op *setOp) create(k string, obj map[string]any, id string) {
	op.created[k] = obj
	op.c.req.created[k] = id
}

// response is the answer of a /set (RFC 8620 §5.3): each of fields
// (created, notCreated, updated, notUpdated, destroyed, notDestroyed)
// null when empty; with a state, accountId, oldState and newState, the
// state read again after the changes.
func (op *setOp) response(fields ...string) (map[string]any, error) {
	all := map[string]any{"created": op.created, "notCreated": op.notCreated, "updated": op.updated,
		"notUpdated": op.notUpdated, "notDestroyed": op.notDestroyed}
	out := make(map[string]any, len(fields)+3)
	for _, f := range fields {
		out[f] = nil
		if f == "destroyed" {
			if len(op.destroyed) > 0 {
				out[f] = op.destroyed
			}
		} else if m, _ := all[f].(map[string]any); len(m) > 0 {
			out[f] = m
		}
	}
	if op.kind == noState {
		return out, nil
	}
	now, err := op.s.store.AccountState(op.c.ctx, op.c.user.ID)
	if err != nil {
		return nil, err
	}
	out["accountId"] = accountID(op.c.user.ID)
	out["oldState"] = stateString(op.old)
	out["newState"] = stateString(stateOf(now, op.kind))
	return out, nil
}

// setFields are all of a /set answer's per-object fields.
var setFields = []string{"created", "notCreated", "updated", "notUpdated", "destroyed", "notDestroyed"}

// changes answers a /changes of kind (RFC 8620 §5.2), naming the ids
// with idOf; the caller adds or replaces what its type answers
// differently. A function, not a method: methods take no type
// parameters.
func changes[ID ~int64](s *Server, c *call, kind mailstore.ChangeKind, idOf func(ID) string) (map[string]any, mailstore.AccountChanges, error) {
	since, max, err := changesArgs(c)
	if err != nil {
		return nil, mailstore.AccountChanges{}, err
	}
	ch, err := s.store.ChangesSinceState(c.ctx, c.user.ID, kind, since, max)
	if err != nil {
		return nil, mailstore.AccountChanges{}, storeError(err)
	}
	ids := func(list []int64) []string {
		out := make([]string, 0, len(list))
		for _, n := range list {
			out = append(out, idOf(ID(n)))
		}
		return out
	}
	return map[string]any{
		"accountId": accountID(c.user.ID), "oldState": stateString(since), "newState": stateString(ch.NewState),
		"hasMoreChanges": ch.HasMore,
		"created":        ids(ch.Created),
		"updated":        ids(ch.Updated),
		"destroyed":      ids(ch.Destroyed),
	}, ch, nil
}
