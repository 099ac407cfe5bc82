"""Serving: the commands jaxseq-translate, jaxseq-evaluate and jaxseq-export, the exported
translator that runs without Flax (`artifact`), and jaxseq-serve, the HTTP service with its page
(`serve`, `page`, `connections`), reading client JSON within bounds (`jsontext`); what a
translator returns for a line of text (`translation`)."""
