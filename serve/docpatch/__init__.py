"""Doc patches: move what maintainers explain in mail, issues and chat into the reviewed docs.

The workflow (docs/design.md, "Doc patches and the gaps report"):

1. `sources.py`: the knowledge to move: a question with its answer, a thread or issue in the
   index, or a gap of `gaps.py`'s report.
2. `locate.py`: where it belongs: the official docs page and section that retrieval over
   official docs finds, or a new FAQ entry when no section fits.
3. `write.py`: the new text, assembled from the evidence on the embedded default, or the
   revised section written by a capable generative backend.
4. `validate.py`: every check before anyone sees the patch (applies, paths, MyST structure,
   names, links, addresses and secrets, size).
5. `draft.py`: the unified diff and the merge-request description; `gitops.py` commits it
   on a branch of the local docs clone; `gitlab_mr.py` opens or updates the merge request.

Nothing here merges anything, and a re-run for the same source revises the same branch
and merge request.
"""
