"""What tests share: one fake of each kind (a scripted model, an in-memory source, a JSON
HTTP server, a GitLab), and the small corpora several test modules build indexes from.

Test modules import from here, never from each other, so each can be read, run and
changed alone.
"""
