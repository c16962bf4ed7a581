"""The main window's actions, menus and toolbar.

The actions are kept as attributes of the window (``window.export_csv_action``), which enables and
disables them as the run and the selection change (``MainWindow._sync_actions``).
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow


def make_action(window: QMainWindow, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    """A QAction of ``window`` that calls ``slot()``, with its shortcut and tips."""
    action = QAction(text, window)
    if isinstance(shortcut, QKeySequence.StandardKey):  # every binding of the platform's
        action.setShortcuts(shortcut)
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.setStatusTip(tip)
    action.setToolTip(tip or text)
    action.triggered.connect(lambda *_: slot())
    return action


def build_menus(w) -> None:
    """The actions of the :class:`~gui.main_window.MainWindow` ``w``, its menus and its toolbar."""
    std = QKeySequence.StandardKey
    w.open_folder_action = make_action(
        w, "Open image folder…", w.choose_image_folder, std.Open,
        "Open a folder of images to cluster.",
    )  # fmt: skip
    w.open_run_action = make_action(
        w,
        "Open run…",
        w.choose_run_folder,
        "Ctrl+Shift+O",
        "Explore a previous run without retraining.",
    )
    w.export_csv_action = make_action(
        w, "Export labels (CSV)…", w.export_csv, "Ctrl+E",
        "Write path, cluster, name, confidence per image.",
    )  # fmt: skip
    w.export_folders_action = make_action(
        w, "Export cluster folders…", w.export_folders, None,
        "Copy the images into one folder per cluster.",
    )  # fmt: skip
    w.save_report_action = make_action(
        w, "Save report…", w.save_report, None,
        "Write the run as one HTML page to share: settings, clusters, images, map.",
    )  # fmt: skip
    w.export_model_action = make_action(
        w, "Export model…", w.export_model, None,
        "Write the clusters as one Keras model (.keras) that classifies new images, with the "
        "report and the clusters' names beside it.",
    )  # fmt: skip
    w.add_images_action = make_action(
        w, "Add images…", w.adder.add_images, None,
        "Place the images of another folder into this run's clusters and map, without retraining.",
    )  # fmt: skip
    w.run_action = make_action(w, "Run", w.start_run, "Ctrl+R", "Start or continue the run.")
    w.cancel_action = make_action(
        w, "Cancel", w.cancel_run, "Esc", "Stop; finished stages are kept."
    )
    w.undo_action = make_action(w, "Undo correction", w.session.undo, std.Undo)
    w.redo_action = make_action(w, "Redo correction", w.session.redo, std.Redo)
    w.move_action = make_action(w, "Move selection to cluster…", w.move_selection, "Ctrl+M")
    w.new_cluster_action = make_action(
        w, "New cluster from selection", w.new_cluster_from_selection, "Ctrl+Shift+N",
        "Put the selected images into a new cluster of their own.",
    )  # fmt: skip
    w.split_action = make_action(
        w, "Split cluster…", w.split_cluster, None,
        "Cluster a cluster's images again (K-means) into parts; the others become new clusters.",
    )  # fmt: skip
    w.retrain_action = make_action(
        w, "Retrain with my corrections", w.retrain_with_corrections, "Ctrl+Shift+R",
        "Recompute the clusters of the other images from the images you moved.",
    )  # fmt: skip
    w.restore_model_action = make_action(
        w, "Restore the model's clusters", w.restore_model_clusters, None,
        "Show the run's own clusters again (your corrections stay).",
    )  # fmt: skip
    w.export_selection_action = make_action(
        w, "Export selection (CSV)…", w.export_selection, None,
        "Write the labels of the selected images only (box or lasso in the map).",
    )  # fmt: skip
    w.restore_layout_action = make_action(
        w, "Restore default layout", w.restore_layout, None,
        "Show every panel again, docked in its default place.",
    )  # fmt: skip
    w.cache_action = make_action(
        w, "Cache of decoded images…", w.show_cache, None,
        "See how much disk semclust's cache of decoded images takes, and free what runs no longer need.",
    )  # fmt: skip
    quit_action = make_action(w, "Quit", w.close, std.Quit)

    file_menu = w.menuBar().addMenu("&File")
    file_menu.addActions([w.open_folder_action, w.open_run_action])
    w.recent_menu = file_menu.addMenu("Open recent")
    file_menu.addSeparator()
    file_menu.addAction(w.add_images_action)
    file_menu.addSeparator()
    file_menu.addActions([w.export_csv_action, w.export_selection_action, w.export_folders_action])
    file_menu.addAction(w.save_report_action)
    file_menu.addAction(w.export_model_action)
    file_menu.addSeparator()
    file_menu.addAction(w.cache_action)
    file_menu.addSeparator()
    file_menu.addAction(quit_action)
    edit_menu = w.menuBar().addMenu("&Edit")
    edit_menu.addActions([w.undo_action, w.redo_action])
    edit_menu.addSeparator()
    edit_menu.addActions([w.move_action, w.new_cluster_action, w.split_action])
    edit_menu.addSeparator()
    edit_menu.addActions([w.retrain_action, w.restore_model_action])
    run_menu = w.menuBar().addMenu("&Run")
    run_menu.addActions([w.run_action, w.cancel_action])
    view_menu = w.menuBar().addMenu("&View")
    for i, title in enumerate(w.TABS):
        view_menu.addAction(
            make_action(w, title, lambda i=i: w.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}")
        )
    view_menu.addSeparator()
    view_menu.addAction(w.scatter.legend_action)
    view_menu.addSeparator()
    for dock in w.docks:
        action = dock.toggleViewAction()
        action.setText(f"{dock.windowTitle()} panel")
        action.setStatusTip(f"Show or close the {dock.windowTitle()} panel.")
        view_menu.addAction(action)
    view_menu.addAction(w.restore_layout_action)

    toolbar = w.addToolBar("Main")
    toolbar.setObjectName("main-toolbar")
    toolbar.addActions([w.open_folder_action, w.open_run_action])
    toolbar.addSeparator()
    toolbar.addActions([w.run_action, w.cancel_action])
    toolbar.addSeparator()
    toolbar.addActions([w.export_csv_action, w.export_folders_action])
