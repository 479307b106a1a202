"""The sign-off report: one self-contained HTML file, plus Markdown, JSON and JUnit for CI."""
