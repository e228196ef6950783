"""Documents for people, as strings: the model card (Markdown) and the run page (HTML).

Pure renderers: facts in (dicts from manifests, gates, reports), text out. The stages that
gather the facts and write the files live in stages/; nothing here prints or writes.
"""
