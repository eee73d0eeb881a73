"""Sources → Documents: docs trees, git source trees, mail, issues, chat."""
