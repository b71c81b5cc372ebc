"""Invitation e-mails (iMIP): which letters a change calls for, building them, sending them."""
