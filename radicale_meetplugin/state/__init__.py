"""The durable state: conference records, provider jobs, letters, in one database."""
