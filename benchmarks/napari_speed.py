"""Annotation view speed in a real napari viewer (run under Xvfb: xvfb-run -a python benchmarks/napari_speed.py).

Targets: open a 2,500-frame 480x480 video in at most 2 s; step one frame in at most 50 ms; save one
edited frame in at most 100 ms; redraw the timeline under the frame slider in at most 50 ms (and
re-read it from the store, as after every save). Writes benchmarks/results/napari_speed.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from sonolabel_napari._widget import AnnotatorWidget
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer
    from sonolabel.review import ReviewLog
    from sonolabel.review.timeline import video_timeline
    from sonolabel.store import Project

    r = PhantomRenderer(make_sequence(0, 1, 100))
    out = [r.render(t) for t in range(100)]
    n = 2500
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.zarr"
        with Project.create(path) as p:
            with p.staged_video("S1-T1", n, 480, 480, {"subject": "S1", "fps": 20.0}) as v:
                for i in range(0, n, 100):
                    v.frames[i : i + 100] = np.stack([o[0] for o in out])
            v = p.video("S1-T1")
            for k in range(0, n, 200):
                v.save_annotation(k, out[k % 100][1])
            v.save_propagated(1, np.stack([out[t % 100][1] for t in range(1, 200)]))
            rng = np.random.default_rng(0)
            v.save_margin(1, rng.uniform(0.3, 1.0, (199, 60, 60)))
            v.write_column("margin", 1, rng.uniform(0.8, 1.0, 199).astype(np.float32))
            flags = [
                {
                    "id": f"f{i}",
                    "video": "S1-T1",
                    "kind": "trend",
                    "signal": "area_FDS",
                    "start": s,
                    "stop": s + 30,
                    "severity": float(rng.random()),
                    "reason": "",
                }
                for i, s in enumerate(range(0, n - 30, 40))
            ]
            ReviewLog(p).set_flags("S1-T1", flags)
        viewer = napari.Viewer(show=True)
        w = AnnotatorWidget(viewer)
        viewer.window.add_dock_widget(w, area="right")
        w.open_project(path)
        QApplication.processEvents()
        t0 = time.perf_counter()
        w.open_video("S1-T1")
        QApplication.processEvents()
        open_s = time.perf_counter() - t0
        steps = []
        for t in range(100, 140):
            t0 = time.perf_counter()
            viewer.dims.set_current_step(0, t)
            QApplication.processEvents()
            steps.append(time.perf_counter() - t0)
        saves = []
        for t in range(100, 120):
            viewer.dims.set_current_step(0, t)
            w.labels_layer.paint((t, 200, 200), 3)
            t0 = time.perf_counter()
            w.save()
            QApplication.processEvents()  # the video table's row and the timeline refreshed too
            saves.append(time.perf_counter() - t0)
        tl = w.session.timeline
        tl.resize(1400, 80)
        redraws, repaints, reads = [], [], []
        for _ in range(20):
            redraws.append(tl.draw_ms() / 1e3)
            t0 = time.perf_counter()
            tl.repaint()  # on screen, from scratch (draw_ms dropped the cached drawing)
            repaints.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            video_timeline(w.video)
            reads.append(time.perf_counter() - t0)
        w.close_project()
        viewer.close()
    res = {
        "frames": n,
        "size": 480,
        "open_s": open_s,
        "step_ms_median": 1e3 * float(np.median(steps)),
        "step_ms_p95": 1e3 * float(np.percentile(steps, 95)),
        "save_ms_median": 1e3 * float(np.median(saves)),
        "save_ms_max": 1e3 * float(np.max(saves)),
        "timeline_flags": len(flags),
        "timeline_redraw_ms_median": 1e3 * float(np.median(redraws)),
        "timeline_redraw_ms_max": 1e3 * float(np.max(redraws)),
        "timeline_repaint_ms_median": 1e3 * float(np.median(repaints)),
        "timeline_repaint_ms_max": 1e3 * float(np.max(repaints)),
        "timeline_read_ms_median": 1e3 * float(np.median(reads)),
    }
    (Path(__file__).parent / "results" / "napari_speed.json").write_text(json.dumps(res, indent=1))
    print(
        f"open {open_s:.2f} s (target 2); step {res['step_ms_median']:.1f} ms median, {res['step_ms_p95']:.1f} ms p95 "
        f"(target 50); save {res['save_ms_median']:.1f} ms median, {res['save_ms_max']:.1f} ms max (target 100); "
        f"timeline draw {res['timeline_redraw_ms_median']:.1f} ms median, {res['timeline_redraw_ms_max']:.1f} ms max, "
        f"on screen {res['timeline_repaint_ms_median']:.1f} ms median, {res['timeline_repaint_ms_max']:.1f} ms max (target 50), "
        f"read {res['timeline_read_ms_median']:.1f} ms"
    )


if __name__ == "__main__":
    main()
