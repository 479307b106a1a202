"""Attachments: files, images and voice messages on conversation messages."""
