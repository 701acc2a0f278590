"""The paper's real-vs-fake perceptual study: a study folder (settings, images, answers), each rater's schedule,
the browser page and its server, the SQLite answers and the statistics."""
