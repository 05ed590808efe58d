package catalog

import "github.com/switchboard-hq/switchboard/pkg/workflow"

// Integrations lists the integrations project p applied, by id. Built-ins
// the project never applied are not listed: every project has them
// (Integration finds them), and only those its workflows use matter to a
// caller that lists.
func (c *Catalog) Integrations(p string) []*workflow.Integration {
	return view(c, p, func(ps *projectState) []*workflow.Integration {
		return sortedValues(ps.integrations, func(in *workflow.Integration) string { return in.ID })
	})
}
