// @ts-check
// The JSON the server answers with and pushes (REST bodies, Socket.IO events and acks), as
// JSDoc types for the type checker. Nothing here runs and no page loads this file: the
// other modules name these types as `import("./views.js").UserView`.

/** @typedef {string} Id 24 hex characters. */
/** @typedef {string} Iso A date and time, ISO 8601. */

/**
 * A user as clients see it (`email` only in the caller's own profile).
 * @typedef {object} UserView
 * @property {Id} _id
 * @property {string} firstName
 * @property {string} lastName
 * @property {string} username
 * @property {string} [email]
 * @property {string} [avatarUrl] a media id or an `/api/v1/media/{id}` path
 * @property {string} about
 * @property {boolean} emailVerified
 * @property {Presence} status
 * @property {Iso} createdAt
 * @property {Iso} updatedAt
 */

/** @typedef {"online" | "offline"} Presence */

/** @typedef {"text" | "image" | "file" | "link" | "emoji" | "video" | "audio" | "call"} MessageType */

/**
 * A message as clients see it.
 * @typedef {object} MessageView
 * @property {Id} _id
 * @property {Id} chatId
 * @property {Id} [groupId]
 * @property {number} seq
 * @property {Id} sender
 * @property {string} clientMsgId
 * @property {string} content
 * @property {MessageType} type
 * @property {Id[]} attachments media ids
 * @property {Id} [replyTo]
 * @property {boolean} starred whether the caller starred it
 * @property {Iso} createdAt
 * @property {Iso} updatedAt
 * @property {Iso} [editedAt]
 * @property {boolean} deleted
 * @property {CallRecordView} [call] for `type: "call"`
 */

/**
 * A call's record in the chat history.
 * @typedef {object} CallRecordView
 * @property {Id} callId
 * @property {CallType} type
 * @property {Id[]} participants
 * @property {Iso} startedAt
 * @property {Iso} endedAt
 * @property {number} durationSecs
 * @property {"ended" | "missed"} status
 */

/**
 * A chat's newest message, as the chat list shows it.
 * @typedef {object} LastMessageView
 * @property {Id} _id
 * @property {number} seq
 * @property {Id} sender
 * @property {MessageType} type
 * @property {string} content
 * @property {boolean} deleted
 * @property {Iso} createdAt
 */

/**
 * A chat as one member sees it.
 * @typedef {object} ChatView
 * @property {Id} _id
 * @property {boolean} isGroup
 * @property {string} [name]
 * @property {Id[]} participants
 * @property {Id} [groupId]
 * @property {LastMessageView} [lastMessage]
 * @property {number} lastSeq
 * @property {number} readSeq the caller's read position
 * @property {number} unreadCount
 * @property {boolean} pinned whether the caller pinned it
 * @property {Iso} createdAt
 * @property {Iso} updatedAt
 */

/**
 * A group; its conversation is the chat `chatId`.
 * @typedef {object} GroupView
 * @property {Id} _id
 * @property {string} name
 * @property {string} about
 * @property {Id[]} members
 * @property {Id[]} admins
 * @property {Id[]} invited
 * @property {Id} chatId
 * @property {Iso} createdAt
 * @property {Iso} updatedAt
 */

/**
 * A friend request.
 * @typedef {object} InvitationView
 * @property {Id} _id
 * @property {Id} sender
 * @property {Id} receiver
 * @property {string} content
 * @property {"pending" | "accepted" | "rejected" | "cancelled"} status
 * @property {Iso} createdAt
 */

/**
 * The pending friend requests (`GET /api/v1/friends/requests`).
 * @typedef {object} FriendRequests
 * @property {InvitationView[]} incoming
 * @property {InvitationView[]} outgoing
 */

/**
 * @typedef {object} NotificationView
 * @property {Id} _id
 * @property {"message" | "friend_request" | "friend_accepted" | "group_invite"} type
 * @property {string} content
 * @property {Id} relatedId
 * @property {boolean} read
 * @property {Iso} createdAt
 */

/** @typedef {"audio" | "video"} CallType */

/**
 * A call as clients see it.
 * @typedef {object} CallView
 * @property {Id} _id
 * @property {CallType} type
 * @property {Id} chatId
 * @property {Id} initiator
 * @property {Id[]} participants
 * @property {Id[]} invited
 * @property {"ringing" | "ongoing" | "ended" | "missed"} status
 * @property {string} [endReason] once ended
 * @property {Iso} startedAt
 * @property {Iso} [answeredAt]
 * @property {Iso} [endedAt]
 */

/**
 * @typedef {object} MediaView
 * @property {Id} _id
 * @property {"image" | "audio" | "video" | "file"} type
 * @property {"avatar" | "attachment"} kind
 * @property {Id} [chatId]
 * @property {Id} uploader
 * @property {string} name
 * @property {string} fileType
 * @property {number} size
 * @property {Iso} uploadedAt
 */

/**
 * Where and how to upload a file (`POST /api/v1/media/uploads`).
 * @typedef {object} UploadTicket
 * @property {Id} _id
 * @property {Iso} expiresAt
 * @property {{ url: string, fields: Record<string, string> }} form
 */

/**
 * A short-lived download URL (`GET /api/v1/media/{id}`).
 * @typedef {object} DownloadUrl
 * @property {string} url
 * @property {Iso} expiresAt
 */

/**
 * What login, verify and refresh answer.
 * @typedef {object} AuthResponse
 * @property {string} accessToken
 * @property {string} tokenType
 * @property {number} expiresIn seconds
 * @property {UserView} user
 * @property {string} sessionId
 */

/**
 * One page of a list.
 * @template T
 * @typedef {object} Page
 * @property {T[]} data
 * @property {string} [nextCursor]
 */

/**
 * The assistant's chat (`GET /api/v1/chats/ai`).
 * @typedef {object} AiChatView
 * @property {Id} _id
 * @property {Id} userId
 * @property {boolean} pinned
 * @property {boolean} configured whether this server has an assistant to answer
 * @property {string} model
 * @property {number} lastSeq
 * @property {Iso} createdAt
 * @property {Iso} updatedAt
 */

/**
 * A question or an answer in the AI chat.
 * @typedef {object} AiMessageView
 * @property {Id} _id
 * @property {Id} chatId
 * @property {number} seq
 * @property {"user" | "assistant"} role
 * @property {string} content
 * @property {"complete" | "cancelled"} status
 * @property {string} clientMsgId
 * @property {Id} [questionId]
 * @property {Id} [sourceChatId] for a summary: the chat it summarizes
 * @property {string} [model]
 * @property {Iso} createdAt
 */

/**
 * `ai:error`: no answer was stored.
 * @typedef {object} AiError
 * @property {string} messageId
 * @property {Id} [questionId]
 * @property {string} [clientMsgId]
 * @property {string} code
 * @property {string} [message]
 */

/**
 * `message:read`: a member's read position moved forward.
 * @typedef {object} ReadReceipt
 * @property {Id} chatId
 * @property {Id} userId
 * @property {number} seq
 */

/**
 * One chat's missed messages in the `chat:sync` ack.
 * @typedef {object} SyncedChat
 * @property {Id} chatId
 * @property {number} lastSeq
 * @property {MessageView[]} messages
 * @property {boolean} hasMore
 */

export {};
