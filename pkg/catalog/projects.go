package catalog

import "sort"

// Projects lists the ids of the projects the catalog holds, sorted.
func (c *Catalog) Projects() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.projects))
	for id, ps := range c.projects {
		if ps.project != nil {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// ProjectsChanged returns a channel that is closed the next time a project
// is created or deleted; call it again for the change after that.
func (c *Catalog) ProjectsChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.projectsChanged == nil {
		c.projectsChanged = make(chan struct{})
	}
	return c.projectsChanged
}

// noteProjectChange wakes ProjectsChanged's waiters. Lock held.
func (c *Catalog) noteProjectChange() {
	if c.projectsChanged != nil {
		close(c.projectsChanged)
		c.projectsChanged = nil
	}
}
