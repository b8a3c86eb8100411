"""The browser demo. Back-end, without Gradio: `stories` (checked inputs, the streaming story generator), `views`
and `views_tokenizer` (the Inspect views), `startup` (which model, device, threads, examples), `sessions`
(per-session files). The page: `ui.build_demo(model)`, its tabs in `ui_generate` and `ui_inspect`. `app.main` reads
the configuration and serves it (the root `app.py`, `phenaki demo`).

Needs Gradio (`pip install "phenaki[demo]"`) for the page only; the library never imports this package."""
