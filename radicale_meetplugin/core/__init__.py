"""The pure core: detect -> plan -> rewrite over iCalendar text. No I/O, no state, no network."""
