package audit

// TraceNode is one agent in a trace's delegation tree: the decisions it
// was the actor of (in the order written) and the agents it delegated to.
// ID "" is the unauthenticated caller (a 401 has no agent).
type TraceNode struct {
	ID        string
	Name      string // the agent's name as the trail last recorded it, "" if none
	Decisions []*Record
	Children  []*TraceNode
	byID      map[string]*TraceNode
}

func (n *TraceNode) child(id string) *TraceNode {
	if c, ok := n.byID[id]; ok {
		return c
	}
	c := &TraceNode{ID: id, byID: map[string]*TraceNode{}}
	n.byID[id] = c
	n.Children = append(n.Children, c)
	return c
}

// TraceTree arranges one trace's records (in the order written) as a
// forest and returns its roots: a record with chain [A, B, C] sits under
// C, under B, under A. Records without an agent (401s) sit at the top,
// under the node with ID "". `meshguard audit trace` prints it and the
// console draws it, so both show the same tree.
func TraceTree(rs []Record) []*TraceNode {
	root := &TraceNode{byID: map[string]*TraceNode{}}
	names := map[string]string{}
	for i := range rs {
		r := &rs[i]
		if r.AgentID != "" && r.AgentName != "" {
			names[r.AgentID] = r.AgentName
		}
		n := root
		chain := r.Chain
		if len(chain) == 0 {
			chain = []string{r.AgentID} // "" groups the unauthenticated
		}
		for _, id := range chain {
			n = n.child(id)
		}
		n.Decisions = append(n.Decisions, r)
	}
	var name func(n *TraceNode)
	name = func(n *TraceNode) {
		n.Name = names[n.ID]
		for _, c := range n.Children {
			name(c)
		}
	}
	name(root)
	return root.Children
}
