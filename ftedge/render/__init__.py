"""Documents for people: the model card (Markdown) and the run page (HTML).

card.py and page.py are pure renderers: facts in (dicts from manifests, gates, reports), text
out. model_card.py gathers a card's facts from an artifact folder and its run, and writes the
card (export) or rewrites its latency section (bench), atomically; nothing here prints.
"""
